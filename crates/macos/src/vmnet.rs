//! Safe vmnet: network configuration, networks and interfaces (macOS 26+).
//!
//! A broker's vmnet backend does, per network:
//!
//! ```ignore
//! let mut config = VmnetConfiguration::new(Mode::Shared)?;
//! config.set_ipv4_subnet(addr, mask)?;          // optional settings
//! let network = VmnetNetwork::create(&config)?; // config may be dropped now
//! let serialization = network.copy_serialization()?; // sent to clients
//! let info = network.info(Mode::Shared);        // network_info / status
//! drop(network);                                // removes the network
//! ```
//!
//! A client turns the serialization back into a network of its own with
//! [`VmnetNetwork::create_with_serialization`] and may attach an interface with
//! [`VmnetInterface::start`].
//!
//! Type-checked for macOS; run on Linux against the fakes of crates/fake-apple (docs/macos-fakes.md); not run on macOS by us.

use std::ffi::{CString, c_void};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ptr::NonNull;
use std::sync::mpsc;
use std::time::Duration;

use block2::RcBlock;
use dispatch2::{DispatchQueue, DispatchRetained};
use objc2_core_foundation::{CFRetained, CFType};
use vmnet_broker_proto::{Mode, NetworkInfo};

use crate::sys::vmnet as sys;
use crate::sys::xpc::xpc_object_t;
use crate::xpc::{XpcDictionary, XpcObject, no_unwind};
use crate::{VmnetError, VmnetMode, VmnetStatus};

/// A Core Foundation object we own one reference to (`CFRelease` on drop
/// through `CFRetained`).
struct CfOwned(CFRetained<CFType>);

// SAFETY: vmnet configuration and network objects are only ever used by
// one thread at a time here (the owning wrappers take `&mut self` to change
// them and are not `Sync`). vmnet documents no thread affinity for them,
// and Core Foundation reference counting is thread-safe, so moving the
// owner between threads (as a dispatch queue does) is sound.
unsafe impl Send for CfOwned {}

impl CfOwned {
    /// # Safety
    ///
    /// `ptr` must be NULL or a +1 reference to a CF object that the caller
    /// gives up.
    unsafe fn from_create<T>(ptr: *mut T) -> Option<Self> {
        let ptr = NonNull::new(ptr.cast::<CFType>())?;
        // SAFETY: per the caller, a +1 CF reference now owned by CFRetained,
        // which releases it with CFRelease.
        Some(Self(unsafe { CFRetained::from_raw(ptr) }))
    }

    fn as_ptr<T>(&self) -> *mut T {
        CFRetained::as_ptr(&self.0).as_ptr().cast::<T>()
    }
}

fn in_addr(addr: Ipv4Addr) -> libc::in_addr {
    // `s_addr` holds the address in network byte order, i.e. the octets in
    // memory order.
    libc::in_addr {
        s_addr: u32::from_ne_bytes(addr.octets()),
    }
}

fn in6_addr(addr: Ipv6Addr) -> libc::in6_addr {
    libc::in6_addr {
        s6_addr: addr.octets(),
    }
}

fn check(operation: &'static str, status: sys::vmnet_return_t) -> Result<(), VmnetError> {
    let status = VmnetStatus(status);
    if status.is_success() {
        Ok(())
    } else {
        Err(VmnetError::new(operation, status))
    }
}

/// A failure status for a NULL result: the reported status, or
/// `VMNET_FAILURE` if vmnet claimed success anyway.
fn null_result(operation: &'static str, status: sys::vmnet_return_t) -> VmnetError {
    let status = VmnetStatus(status);
    VmnetError::new(
        operation,
        if status.is_success() {
            VmnetStatus::VMNET_FAILURE
        } else {
            status
        },
    )
}

/// Transport protocol of a port forwarding rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortProtocol {
    /// `IPPROTO_TCP` (6).
    Tcp,
    /// `IPPROTO_UDP` (17).
    Udp,
}

impl PortProtocol {
    fn number(self) -> u8 {
        match self {
            Self::Tcp => 6,
            Self::Udp => 17,
        }
    }
}

/// A network configuration being built
/// (`vmnet_network_configuration_ref`). Defaults (Apple's documentation):
/// routing-table default interface, NAT44/NAT66/DHCP/DNS proxy/router
/// advertisement on, a /24 in 192.168.0.0/16 and a random ULA /64 chosen
/// by vmnet, MTU 1500, no rules or reservations.
pub struct VmnetConfiguration {
    raw: CfOwned,
    mode: Mode,
}

impl std::fmt::Debug for VmnetConfiguration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmnetConfiguration")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl VmnetConfiguration {
    /// `vmnet_network_configuration_create`.
    ///
    /// # Errors
    ///
    /// vmnet refused (the error names the status).
    pub fn new(mode: Mode) -> Result<Self, VmnetError> {
        let mut status = VmnetStatus::VMNET_FAILURE.0;
        // SAFETY: a plain mode value and a valid out pointer; the result is
        // NULL or a +1 CF object (AD).
        let ptr = unsafe {
            sys::vmnet_network_configuration_create(VmnetMode::from(mode).0, &mut status)
        };
        // SAFETY: +1 or NULL, owned from here on.
        let raw = unsafe { CfOwned::from_create(ptr) }
            .ok_or_else(|| null_result("vmnet_network_configuration_create", status))?;
        Ok(Self { raw, mode })
    }

    /// The mode the configuration was made with.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    fn ptr(&self) -> sys::vmnet_network_configuration_ref {
        self.raw.as_ptr()
    }

    /// Sends NAT traffic out through `interface` (shared mode only).
    ///
    /// # Errors
    ///
    /// vmnet refused, or the name holds a NUL byte
    /// (`VMNET_INVALID_ARGUMENT`).
    pub fn set_external_interface(&mut self, interface: &str) -> Result<(), VmnetError> {
        const OP: &str = "vmnet_network_configuration_set_external_interface";
        let name = CString::new(interface)
            .map_err(|_| VmnetError::new(OP, VmnetStatus::VMNET_INVALID_ARGUMENT))?;
        // SAFETY: a live configuration we own, a NUL-terminated name valid
        // for the call.
        check(OP, unsafe {
            sys::vmnet_network_configuration_set_external_interface(self.ptr(), name.as_ptr())
        })
    }

    /// Turns IPv4 NAT off.
    pub fn disable_nat44(&mut self) {
        // SAFETY: a live configuration we own.
        unsafe { sys::vmnet_network_configuration_disable_nat44(self.ptr()) }
    }

    /// Turns IPv6 NAT off.
    pub fn disable_nat66(&mut self) {
        // SAFETY: a live configuration we own.
        unsafe { sys::vmnet_network_configuration_disable_nat66(self.ptr()) }
    }

    /// Turns vmnet's DHCP server off.
    pub fn disable_dhcp(&mut self) {
        // SAFETY: a live configuration we own.
        unsafe { sys::vmnet_network_configuration_disable_dhcp(self.ptr()) }
    }

    /// Turns vmnet's DNS proxy off.
    pub fn disable_dns_proxy(&mut self) {
        // SAFETY: a live configuration we own.
        unsafe { sys::vmnet_network_configuration_disable_dns_proxy(self.ptr()) }
    }

    /// Turns IPv6 router advertisements off.
    pub fn disable_router_advertisement(&mut self) {
        // SAFETY: a live configuration we own.
        unsafe { sys::vmnet_network_configuration_disable_router_advertisement(self.ptr()) }
    }

    /// Sets the IPv4 subnet: `subnet_addr` is passed to vmnet as given.
    /// Apple's documentation says vmnet reserves the first, second and last
    /// address of the range (the second is the host's). Two independent
    /// bindings pass the first usable address (network + 1) rather than the
    /// network address; that is a third-party observation, not Apple's
    /// word, so the choice is left to the caller.
    ///
    /// # Errors
    ///
    /// vmnet refused.
    pub fn set_ipv4_subnet(
        &mut self,
        subnet_addr: Ipv4Addr,
        mask: Ipv4Addr,
    ) -> Result<(), VmnetError> {
        let addr = in_addr(subnet_addr);
        let mask = in_addr(mask);
        // SAFETY: a live configuration; both pointers are valid for the
        // call.
        check("vmnet_network_configuration_set_ipv4_subnet", unsafe {
            sys::vmnet_network_configuration_set_ipv4_subnet(self.ptr(), &addr, &mask)
        })
    }

    /// Sets the IPv6 prefix.
    ///
    /// # Errors
    ///
    /// vmnet refused.
    pub fn set_ipv6_prefix(&mut self, prefix: Ipv6Addr, len: u8) -> Result<(), VmnetError> {
        let prefix = in6_addr(prefix);
        // SAFETY: a live configuration; the pointer is valid for the call.
        check("vmnet_network_configuration_set_ipv6_prefix", unsafe {
            sys::vmnet_network_configuration_set_ipv6_prefix(self.ptr(), &prefix, len)
        })
    }

    /// Sets the MTU.
    ///
    /// # Errors
    ///
    /// vmnet refused.
    pub fn set_mtu(&mut self, mtu: u32) -> Result<(), VmnetError> {
        // SAFETY: a live configuration.
        check("vmnet_network_configuration_set_mtu", unsafe {
            sys::vmnet_network_configuration_set_mtu(self.ptr(), mtu)
        })
    }

    /// Reserves `address` for the guest with MAC `mac`.
    ///
    /// # Errors
    ///
    /// vmnet refused.
    pub fn add_dhcp_reservation(
        &mut self,
        mac: [u8; 6],
        address: Ipv4Addr,
    ) -> Result<(), VmnetError> {
        let client = sys::ether_addr { octet: mac };
        let reservation = in_addr(address);
        // SAFETY: a live configuration; both pointers are valid for the
        // call.
        check("vmnet_network_configuration_add_dhcp_reservation", unsafe {
            sys::vmnet_network_configuration_add_dhcp_reservation(self.ptr(), &client, &reservation)
        })
    }

    /// Forwards `external_port` on the host to
    /// `internal_address:internal_port` in the network.
    ///
    /// # Errors
    ///
    /// vmnet refused.
    pub fn add_port_forwarding_rule(
        &mut self,
        protocol: PortProtocol,
        external_port: u16,
        internal_address: IpAddr,
        internal_port: u16,
    ) -> Result<(), VmnetError> {
        const OP: &str = "vmnet_network_configuration_add_port_forwarding_rule";
        // Keep both address forms alive across the call.
        let v4;
        let v6;
        #[allow(
            clippy::cast_possible_truncation,
            reason = "AF_INET and AF_INET6 are small constants that fit sa_family_t by definition"
        )]
        let (family, address): (libc::sa_family_t, *const c_void) = match internal_address {
            IpAddr::V4(a) => {
                v4 = in_addr(a);
                (libc::AF_INET as libc::sa_family_t, (&raw const v4).cast())
            }
            IpAddr::V6(a) => {
                v6 = in6_addr(a);
                (libc::AF_INET6 as libc::sa_family_t, (&raw const v6).cast())
            }
        };
        // SAFETY: a live configuration; `address` points to an in_addr for
        // AF_INET or an in6_addr for AF_INET6, alive for the call. Argument
        // order per the prototype: internal port, then external port.
        check(OP, unsafe {
            sys::vmnet_network_configuration_add_port_forwarding_rule(
                self.ptr(),
                protocol.number(),
                family,
                internal_port,
                external_port,
                address,
            )
        })
    }
}

/// A live vmnet network (`vmnet_network_ref`). The network exists for as
/// long as this value; dropping it (`CFRelease`) removes it.
pub struct VmnetNetwork {
    raw: CfOwned,
}

impl std::fmt::Debug for VmnetNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (subnet, mask) = self.ipv4_subnet();
        f.debug_struct("VmnetNetwork")
            .field("subnet", &subnet)
            .field("mask", &mask)
            .finish_non_exhaustive()
    }
}

impl VmnetNetwork {
    /// `vmnet_network_create`. The configuration may be dropped afterwards.
    ///
    /// # Errors
    ///
    /// vmnet refused; `VMNET_MEM_FAILURE` (1002) usually means the binary
    /// lacks the virtualization entitlement (the error message says so).
    pub fn create(config: &VmnetConfiguration) -> Result<Self, VmnetError> {
        let mut status = VmnetStatus::VMNET_FAILURE.0;
        // SAFETY: a live configuration, a valid out pointer; the result is
        // NULL or +1 (AD).
        let ptr = unsafe { sys::vmnet_network_create(config.ptr(), &mut status) };
        // SAFETY: +1 or NULL, owned from here on.
        let raw = unsafe { CfOwned::from_create(ptr) }
            .ok_or_else(|| null_result("vmnet_network_create", status))?;
        Ok(Self { raw })
    }

    /// `vmnet_network_create_with_serialization`: the client side, which
    /// turns a broker's serialization into a network of this process.
    ///
    /// # Errors
    ///
    /// vmnet refused.
    pub fn create_with_serialization(serialization: &XpcObject) -> Result<Self, VmnetError> {
        let mut status = VmnetStatus::VMNET_FAILURE.0;
        // SAFETY: a live XPC object, a valid out pointer; NULL or +1 (AD).
        let ptr = unsafe {
            sys::vmnet_network_create_with_serialization(serialization.as_ptr(), &mut status)
        };
        // SAFETY: +1 or NULL, owned from here on.
        let raw = unsafe { CfOwned::from_create(ptr) }
            .ok_or_else(|| null_result("vmnet_network_create_with_serialization", status))?;
        Ok(Self { raw })
    }

    fn ptr(&self) -> sys::vmnet_network_ref {
        self.raw.as_ptr()
    }

    /// `vmnet_network_copy_serialization`: the opaque object clients need.
    /// Make it once per network and hand out clones.
    ///
    /// # Errors
    ///
    /// vmnet refused.
    pub fn copy_serialization(&self) -> Result<XpcObject, VmnetError> {
        let mut status = VmnetStatus::VMNET_FAILURE.0;
        // SAFETY: a live network, a valid out pointer; the result is NULL
        // or a +1 XPC object ("copy").
        let ptr = unsafe { sys::vmnet_network_copy_serialization(self.ptr(), &mut status) };
        // SAFETY: +1 or NULL; nobody else modifies the serialization.
        unsafe { XpcObject::from_owned(ptr) }
            .ok_or_else(|| null_result("vmnet_network_copy_serialization", status))
    }

    /// The IPv4 network address and netmask.
    pub fn ipv4_subnet(&self) -> (Ipv4Addr, Ipv4Addr) {
        let mut subnet = in_addr(Ipv4Addr::UNSPECIFIED);
        let mut mask = in_addr(Ipv4Addr::UNSPECIFIED);
        // SAFETY: a live network and two valid out pointers.
        unsafe { sys::vmnet_network_get_ipv4_subnet(self.ptr(), &mut subnet, &mut mask) };
        (
            Ipv4Addr::from(subnet.s_addr.to_ne_bytes()),
            Ipv4Addr::from(mask.s_addr.to_ne_bytes()),
        )
    }

    /// The IPv6 prefix and its length.
    pub fn ipv6_prefix(&self) -> (Ipv6Addr, u8) {
        let mut prefix = in6_addr(Ipv6Addr::UNSPECIFIED);
        let mut len = 0u8;
        // SAFETY: a live network and two valid out pointers.
        unsafe { sys::vmnet_network_get_ipv6_prefix(self.ptr(), &mut prefix, &mut len) };
        (Ipv6Addr::from(prefix.s6_addr), len)
    }

    /// The `network_info` of this network. The mode is not readable back
    /// from vmnet, so the caller passes the one it configured.
    pub fn info(&self, mode: Mode) -> NetworkInfo {
        let (subnet, mask) = self.ipv4_subnet();
        let (ipv6_prefix, ipv6_prefix_length) = self.ipv6_prefix();
        NetworkInfo {
            mode,
            subnet,
            mask,
            ipv6_prefix,
            ipv6_prefix_length,
        }
    }
}

/// How long [`VmnetInterface::start`] and [`VmnetInterface::stop`] wait
/// for vmnet's completion handler.
const COMPLETION_TIMEOUT: Duration = Duration::from_secs(30);

/// A virtual interface attached to a network, for tests that prove a
/// serialization works (the broker itself never starts interfaces).
pub struct VmnetInterface {
    raw: Option<NonNull<sys::vmnet_interface>>,
    queue: DispatchRetained<DispatchQueue>,
}

// SAFETY: the interface is used from the thread that owns this value and
// from vmnet's callbacks on our private queue; vmnet hands the same
// interface to callbacks on arbitrary queues, so it is not tied to a
// thread.
unsafe impl Send for VmnetInterface {}

impl std::fmt::Debug for VmnetInterface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmnetInterface")
            .field("running", &self.raw.is_some())
            .finish()
    }
}

impl VmnetInterface {
    /// `vmnet_interface_start_with_network` with an empty interface
    /// description; waits (up to 30 s) for the completion handler and
    /// returns the interface with its parameters dictionary (MAC address,
    /// MTU, ...; `None` if vmnet gave none).
    ///
    /// Blocks the calling thread; the completion runs on a private queue,
    /// so any thread may call this.
    ///
    /// # Errors
    ///
    /// vmnet refused, or no completion arrived in time.
    pub fn start(network: &VmnetNetwork) -> Result<(Self, Option<XpcObject>), VmnetError> {
        const OP: &str = "vmnet_interface_start_with_network";
        let queue = DispatchQueue::new("com.github.nirs.vmnet-broker.interface", None);
        let (tx, rx) = mpsc::channel::<(u32, Option<XpcObject>)>();
        let block = RcBlock::new(move |status: u32, params: xpc_object_t| {
            no_unwind(OP, || {
                // SAFETY: vmnet passes NULL or a live dictionary for the
                // duration of the handler; we retain it.
                let params = unsafe { XpcObject::from_borrowed(params) };
                let _ = tx.send((status, params));
            });
        });
        let desc = XpcDictionary::new();
        // SAFETY: a live network, dictionary and queue; vmnet copies the
        // block. The result is NULL on immediate failure.
        let raw = unsafe {
            sys::vmnet_interface_start_with_network(network.ptr(), desc.as_ptr(), &queue, &block)
        };
        let raw =
            NonNull::new(raw).ok_or_else(|| VmnetError::new(OP, VmnetStatus::VMNET_FAILURE))?;
        match rx.recv_timeout(COMPLETION_TIMEOUT) {
            Ok((status, params)) => {
                // On a failed start the interface is not stopped (vmnet does
                // not document stopping one that never started); it is left
                // to vmnet.
                check(OP, status)?;
                let interface = Self {
                    raw: Some(raw),
                    queue,
                };
                Ok((interface, params))
            }
            Err(_) => {
                // The start may still complete: stop the interface rather
                // than leak it (dropping it asks vmnet to stop it).
                drop(Self {
                    raw: Some(raw),
                    queue,
                });
                Err(VmnetError::new(
                    "vmnet_interface_start_with_network (no completion within 30 s)",
                    VmnetStatus::VMNET_FAILURE,
                ))
            }
        }
    }

    /// `vmnet_stop_interface`; waits (up to 30 s) for the completion.
    ///
    /// # Errors
    ///
    /// vmnet refused, or no completion arrived in time.
    pub fn stop(mut self) -> Result<(), VmnetError> {
        self.stop_inner(true)
    }

    fn stop_inner(&mut self, wait: bool) -> Result<(), VmnetError> {
        const OP: &str = "vmnet_stop_interface";
        let Some(raw) = self.raw.take() else {
            return Ok(());
        };
        let (tx, rx) = mpsc::channel::<u32>();
        let block = RcBlock::new(move |status: u32| {
            let _ = tx.send(status);
        });
        // SAFETY: a started interface not stopped before (taken out of
        // `self.raw`), our live queue; vmnet copies the block.
        check(OP, unsafe {
            sys::vmnet_stop_interface(raw.as_ptr(), &self.queue, &block)
        })?;
        if !wait {
            return Ok(());
        }
        match rx.recv_timeout(COMPLETION_TIMEOUT) {
            Ok(status) => check(OP, status),
            Err(_) => Err(VmnetError::new(
                "vmnet_stop_interface (no completion within 30 s)",
                VmnetStatus::VMNET_FAILURE,
            )),
        }
    }
}

impl Drop for VmnetInterface {
    fn drop(&mut self) {
        if let Err(error) = self.stop_inner(false) {
            tracing::warn!(%error, "could not stop a vmnet interface");
        }
    }
}
