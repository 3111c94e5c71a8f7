//! Portable core of vmnet-broker: configuration, broker state machine, simulated vmnet
