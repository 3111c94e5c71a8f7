//! vmnet.framework declarations: the macOS 26 network API, plus interface
//! start/stop for tests that attach to a network.
//!
//! Every `vmnet_network*` function is available from macOS 26.0 (AD page
//! metadata: "macOS 26.0+"). Configuration and network objects are Core
//! Foundation objects released with `CFRelease` (AD text of
//! `vmnet_network_configuration_create` and `vmnet_network_create`; NB and
//! CHV do the same). Serializations are XPC objects (`xpc_release`).
//!
//! Apple's vmnet header is not available to us; each prototype below is the
//! one Apple's documentation page shows (AD), cross-checked with at least
//! one independent binding (VC and/or CHV), as listed in
//! `docs/macos-sources.md`.

use std::ffi::{c_char, c_void};
use std::marker::{PhantomData, PhantomPinned};

use block2::Block;
use dispatch2::DispatchQueue;

use super::xpc::xpc_object_t;

/// Opaque configuration object (AD `vmnet/vmnet_network_configuration_ref`).
#[repr(C)]
#[derive(Debug)]
pub struct vmnet_network_configuration {
    _opaque: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `typedef struct vmnet_network_configuration
/// *vmnet_network_configuration_ref;` (AD
/// `vmnet/vmnet_network_configuration_ref`).
pub type vmnet_network_configuration_ref = *mut vmnet_network_configuration;

/// Opaque network object (AD `vmnet/vmnet_network_ref`).
#[repr(C)]
#[derive(Debug)]
pub struct vmnet_network {
    _opaque: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `typedef struct vmnet_network *vmnet_network_ref;` (AD).
pub type vmnet_network_ref = *mut vmnet_network;

/// Opaque interface object (AD `vmnet/interface_ref`).
#[repr(C)]
#[derive(Debug)]
pub struct vmnet_interface {
    _opaque: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `typedef struct vmnet_interface *interface_ref;` (AD).
pub type interface_ref = *mut vmnet_interface;

/// `vmnet_return_t`, an enum with `uint32_t` storage (AD Swift
/// `init(rawValue: UInt32)`; VC `VmnetReturnT = u32`). Values: see
/// [`crate::VmnetStatus`].
pub type vmnet_return_t = u32;

/// `typedef operating_modes_t vmnet_mode_t;` with `uint32_t` storage (AD
/// `vmnet/vmnet_mode_t`). Values: see [`crate::VmnetMode`].
pub type vmnet_mode_t = u32;

/// `typedef struct ether_addr { u_char octet[ETHER_ADDR_LEN]; }
/// ether_addr_t;` with `ETHER_ADDR_LEN` 6 (Darwin `<net/ethernet.h>`, as
/// quoted in public code; VC has the same six-byte layout).
#[repr(C)]
#[derive(Debug)]
pub struct ether_addr {
    /// The six bytes of the MAC address.
    pub octet: [u8; 6],
}

/// `typedef void (^vmnet_start_interface_completion_handler_t)(
/// vmnet_return_t status, xpc_object_t _Nullable interface_param);` (AD
/// `vmnet/vmnet_start_interface_completion_handler_t`; VC; CHV).
pub type vmnet_start_interface_completion_handler_t = Block<dyn Fn(vmnet_return_t, xpc_object_t)>;

/// `typedef void (^vmnet_interface_completion_handler_t)(vmnet_return_t
/// status);` (AD `vmnet/vmnet_interface_completion_handler_t`; VC).
pub type vmnet_interface_completion_handler_t = Block<dyn Fn(vmnet_return_t)>;

#[cfg_attr(target_os = "macos", link(name = "vmnet", kind = "framework"))]
unsafe extern "C" {
    /// `vmnet_network_configuration_ref _Nullable
    /// vmnet_network_configuration_create(vmnet_mode_t mode, vmnet_return_t
    /// *_Nullable status);` (AD
    /// `vmnet/vmnet_network_configuration_create(_:_:)`; VC; CHV; NB).
    pub fn vmnet_network_configuration_create(
        mode: vmnet_mode_t,
        status: *mut vmnet_return_t,
    ) -> vmnet_network_configuration_ref;

    /// `vmnet_return_t vmnet_network_configuration_set_external_interface(
    /// vmnet_network_configuration_ref config, const char *interface_name);`
    /// shared mode only (AD
    /// `vmnet/vmnet_network_configuration_set_external_interface(_:_:)`; VC;
    /// CHV).
    pub fn vmnet_network_configuration_set_external_interface(
        config: vmnet_network_configuration_ref,
        interface_name: *const c_char,
    ) -> vmnet_return_t;

    /// `void vmnet_network_configuration_disable_nat44(
    /// vmnet_network_configuration_ref config);` (AD "See Also" list; VC;
    /// CHV).
    pub fn vmnet_network_configuration_disable_nat44(config: vmnet_network_configuration_ref);

    /// `void vmnet_network_configuration_disable_nat66(
    /// vmnet_network_configuration_ref config);` (AD
    /// `vmnet/vmnet_network_configuration_disable_nat66(_:)`; VC; CHV).
    pub fn vmnet_network_configuration_disable_nat66(config: vmnet_network_configuration_ref);

    /// `void vmnet_network_configuration_disable_dhcp(
    /// vmnet_network_configuration_ref config);` (AD
    /// `vmnet/vmnet_network_configuration_disable_dhcp(_:)`; VC; CHV).
    pub fn vmnet_network_configuration_disable_dhcp(config: vmnet_network_configuration_ref);

    /// `void vmnet_network_configuration_disable_dns_proxy(
    /// vmnet_network_configuration_ref config);` (AD
    /// `vmnet/vmnet_network_configuration_disable_dns_proxy(_:)`; VC; CHV).
    pub fn vmnet_network_configuration_disable_dns_proxy(config: vmnet_network_configuration_ref);

    /// `void vmnet_network_configuration_disable_router_advertisement(
    /// vmnet_network_configuration_ref config);` (AD "See Also" list; VC;
    /// CHV).
    pub fn vmnet_network_configuration_disable_router_advertisement(
        config: vmnet_network_configuration_ref,
    );

    /// `vmnet_return_t vmnet_network_configuration_set_ipv4_subnet(
    /// vmnet_network_configuration_ref config, const struct in_addr
    /// *subnet_addr, const struct in_addr *subnet_mask);` addresses in
    /// network byte order (AD
    /// `vmnet/vmnet_network_configuration_set_ipv4_subnet(_:_:_:)`; VC; CHV).
    pub fn vmnet_network_configuration_set_ipv4_subnet(
        config: vmnet_network_configuration_ref,
        subnet_addr: *const libc::in_addr,
        subnet_mask: *const libc::in_addr,
    ) -> vmnet_return_t;

    /// `vmnet_return_t vmnet_network_configuration_set_ipv6_prefix(
    /// vmnet_network_configuration_ref config, const struct in6_addr
    /// *prefix, uint8_t len);` (AD
    /// `vmnet/vmnet_network_configuration_set_ipv6_prefix(_:_:_:)`; VC; CHV).
    pub fn vmnet_network_configuration_set_ipv6_prefix(
        config: vmnet_network_configuration_ref,
        prefix: *const libc::in6_addr,
        len: u8,
    ) -> vmnet_return_t;

    /// `vmnet_return_t vmnet_network_configuration_set_mtu(
    /// vmnet_network_configuration_ref config, uint32_t mtu);` (AD
    /// `vmnet/vmnet_network_configuration_set_mtu(_:_:)`; VC; CHV).
    pub fn vmnet_network_configuration_set_mtu(
        config: vmnet_network_configuration_ref,
        mtu: u32,
    ) -> vmnet_return_t;

    /// `vmnet_return_t vmnet_network_configuration_add_dhcp_reservation(
    /// vmnet_network_configuration_ref config, const ether_addr_t *client,
    /// const struct in_addr *reservation);` (AD
    /// `vmnet/vmnet_network_configuration_add_dhcp_reservation(_:_:_:)`; VC;
    /// CHV).
    pub fn vmnet_network_configuration_add_dhcp_reservation(
        config: vmnet_network_configuration_ref,
        client: *const ether_addr,
        reservation: *const libc::in_addr,
    ) -> vmnet_return_t;

    /// `vmnet_return_t vmnet_network_configuration_add_port_forwarding_rule(
    /// vmnet_network_configuration_ref config, uint8_t protocol, sa_family_t
    /// address_family, uint16_t internal_port, uint16_t external_port, const
    /// void *internal_address);`
    ///
    /// Mind the order: *internal* port before *external* port (the opposite
    /// of the older `vmnet_interface_add_ip_port_forwarding_rule`). Ports are
    /// in host byte order; `internal_address` points to an `in_addr`
    /// (`AF_INET`) or `in6_addr` (`AF_INET6`). (AD ObjC declaration of
    /// `vmnet_network_configuration_add_port_forwarding_rule(_:_:_:_:_:_:)`;
    /// VC, whose comment notes the order; CHV.)
    pub fn vmnet_network_configuration_add_port_forwarding_rule(
        config: vmnet_network_configuration_ref,
        protocol: u8,
        address_family: libc::sa_family_t,
        internal_port: u16,
        external_port: u16,
        internal_address: *const c_void,
    ) -> vmnet_return_t;

    /// `vmnet_network_ref _Nullable vmnet_network_create(
    /// vmnet_network_configuration_ref configuration, vmnet_return_t
    /// *_Nullable status);` the network lives as long as this reference
    /// (AD `vmnet/vmnet_network_create(_:_:)`; VC; CHV; NB).
    pub fn vmnet_network_create(
        configuration: vmnet_network_configuration_ref,
        status: *mut vmnet_return_t,
    ) -> vmnet_network_ref;

    /// `xpc_object_t _Nullable vmnet_network_copy_serialization(
    /// vmnet_network_ref network, vmnet_return_t *_Nullable status);`
    /// caller owns the result (AD
    /// `vmnet/vmnet_network_copy_serialization(_:_:)`; CHV; NB).
    pub fn vmnet_network_copy_serialization(
        network: vmnet_network_ref,
        status: *mut vmnet_return_t,
    ) -> xpc_object_t;

    /// `vmnet_network_ref _Nullable vmnet_network_create_with_serialization(
    /// xpc_object_t network, vmnet_return_t *_Nullable status);` (AD
    /// `vmnet/vmnet_network_create_with_serialization(_:_:)`; CHV; NB test
    /// clients).
    pub fn vmnet_network_create_with_serialization(
        network: xpc_object_t,
        status: *mut vmnet_return_t,
    ) -> vmnet_network_ref;

    /// `void vmnet_network_get_ipv4_subnet(vmnet_network_ref network,
    /// struct in_addr *subnet, struct in_addr *mask);` (AD
    /// `vmnet/vmnet_network_get_ipv4_subnet(_:_:_:)`; VC; CHV; NB).
    pub fn vmnet_network_get_ipv4_subnet(
        network: vmnet_network_ref,
        subnet: *mut libc::in_addr,
        mask: *mut libc::in_addr,
    );

    /// `void vmnet_network_get_ipv6_prefix(vmnet_network_ref network,
    /// struct in6_addr *prefix, uint8_t *prefix_len);` (AD
    /// `vmnet/vmnet_network_get_ipv6_prefix(_:_:_:)`; VC; CHV; NB).
    pub fn vmnet_network_get_ipv6_prefix(
        network: vmnet_network_ref,
        prefix: *mut libc::in6_addr,
        prefix_len: *mut u8,
    );

    /// `interface_ref _Nullable vmnet_interface_start_with_network(
    /// vmnet_network_ref network, xpc_object_t interface_desc,
    /// dispatch_queue_t queue, vmnet_start_interface_completion_handler_t
    /// start_block);` (AD
    /// `vmnet/vmnet_interface_start_with_network(_:_:_:_:)`; VC; CHV; NB
    /// test).
    pub fn vmnet_interface_start_with_network(
        network: vmnet_network_ref,
        interface_desc: xpc_object_t,
        queue: &DispatchQueue,
        start_block: &vmnet_start_interface_completion_handler_t,
    ) -> interface_ref;

    /// `vmnet_return_t vmnet_stop_interface(interface_ref interface,
    /// dispatch_queue_t queue, vmnet_interface_completion_handler_t
    /// handler);` macOS 10.10 (AD `vmnet/vmnet_stop_interface(_:_:_:)`; VC;
    /// CHV; NB test).
    pub fn vmnet_stop_interface(
        interface: interface_ref,
        queue: &DispatchQueue,
        handler: &vmnet_interface_completion_handler_t,
    ) -> vmnet_return_t;
}
