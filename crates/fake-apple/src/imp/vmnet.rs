//! vmnet.framework's macOS 26 network API: configurations whose setters
//! are recorded and checked, networks with subnets allocated the way the
//! project's simulated backend does, serializations as XPC dictionaries,
//! and interfaces whose completions run on the given queue.

use super::faults::{self, Action, Point};
use std::ffi::{CStr, c_char, c_void};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use block2::Block;

use super::cf::{self, CFRelease, CFRetain};
use super::dispatch::{DPtr, copy_block, enqueue, queue_check};
use super::xpc::{self, Body, Dict, XPtr, alloc as xalloc, release as xrelease};
use super::{Family, check, lock, register, unregister, violation};

const VMNET_SUCCESS: u32 = 1000;
const VMNET_FAILURE: u32 = 1001;
const VMNET_INVALID_ARGUMENT: u32 = 1003;
const VMNET_HOST_MODE: u32 = 1000;
const VMNET_SHARED_MODE: u32 = 1001;

#[derive(Debug, Default)]
pub(crate) struct Config {
    mode: u32,
    external_interface: Option<String>,
    disabled: Vec<&'static str>,
    /// (address as given, mask), host byte order.
    ipv4: Option<(u32, u32)>,
    ipv6: Option<([u8; 16], u8)>,
    mtu: Option<u32>,
    reservations: Vec<([u8; 6], u32)>,
    rules: Vec<(u8, u16)>,
}

#[derive(Debug)]
pub(crate) struct Network {
    id: u64,
    mode: u32,
    net: u32,
    mask: u32,
    prefix: [u8; 16],
    prefix_len: u8,
    mtu: u32,
    /// Made by vmnet_network_create here: holds the subnet reservation.
    owner: bool,
}

impl Drop for Network {
    fn drop(&mut self) {
        if self.owner {
            lock(&ALLOCATED).retain(|(id, _, _)| *id != self.id);
        }
    }
}

pub(crate) enum CfBody {
    Config(Mutex<Config>),
    Network(Network),
}

impl CfBody {
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Config(_) => "vmnet network configuration".into(),
            Self::Network(n) => format!(
                "vmnet network {}/{} ({})",
                Ipv4Addr::from(n.net),
                n.mask.count_ones(),
                if n.owner {
                    "created"
                } else {
                    "from a serialization"
                }
            ),
        }
    }
}

/// Live subnets of networks created in this process: (id, net, mask).
static ALLOCATED: Mutex<Vec<(u64, u32, u32)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn set_status(status: *mut u32, value: u32) {
    if !status.is_null() {
        // SAFETY: the caller passes NULL or a writable status (vmnet docs).
        unsafe { *status = value };
    }
}

fn config(p: *mut c_void, func: &str) -> &'static Mutex<Config> {
    match &cf::get(p, func).body {
        CfBody::Config(c) => c,
        CfBody::Network(_) => violation(&format!(
            "{func} was given a network where a configuration belongs"
        )),
    }
}

fn network(p: *mut c_void, func: &str) -> &'static Network {
    match &cf::get(p, func).body {
        CfBody::Network(n) => n,
        CfBody::Config(_) => violation(&format!(
            "{func} was given a configuration where a network belongs"
        )),
    }
}

fn read_in_addr(p: *const libc::in_addr, func: &str) -> u32 {
    if p.is_null() {
        violation(&format!("{func} was given a NULL address"));
    }
    // SAFETY: non-NULL, a struct in_addr per the prototype.
    u32::from_be(unsafe { (*p).s_addr })
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn vmnet_network_configuration_create(
    mode: u32,
    status: *mut u32,
) -> *mut c_void {
    if mode != VMNET_HOST_MODE && mode != VMNET_SHARED_MODE {
        set_status(status, VMNET_INVALID_ARGUMENT);
        return std::ptr::null_mut();
    }
    set_status(status, VMNET_SUCCESS);
    cf::alloc(CfBody::Config(Mutex::new(Config {
        mode,
        ..Config::default()
    })))
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn vmnet_network_configuration_set_external_interface(
    c: *mut c_void,
    name: *const c_char,
) -> u32 {
    let cfg = config(c, "vmnet_network_configuration_set_external_interface");
    if name.is_null() {
        return VMNET_INVALID_ARGUMENT;
    }
    // SAFETY: a NUL-terminated name per the prototype.
    let name = unsafe { CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned();
    let mut cfg = lock(cfg);
    if cfg.mode != VMNET_SHARED_MODE || name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return VMNET_INVALID_ARGUMENT;
    }
    cfg.external_interface = Some(name);
    VMNET_SUCCESS
}

macro_rules! disable {
    ($($f:ident => $what:literal;)*) => {$(
        #[unsafe(no_mangle)]
        pub(crate) unsafe extern "C" fn $f(c: *mut c_void) {
            lock(config(c, stringify!($f))).disabled.push($what);
        }
    )*};
}

disable! {
    vmnet_network_configuration_disable_nat44 => "nat44";
    vmnet_network_configuration_disable_nat66 => "nat66";
    vmnet_network_configuration_disable_dhcp => "dhcp";
    vmnet_network_configuration_disable_dns_proxy => "dns_proxy";
    vmnet_network_configuration_disable_router_advertisement => "router_advertisement";
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn vmnet_network_configuration_set_ipv4_subnet(
    c: *mut c_void,
    addr: *const libc::in_addr,
    mask: *const libc::in_addr,
) -> u32 {
    const F: &str = "vmnet_network_configuration_set_ipv4_subnet";
    let cfg = config(c, F);
    let (a, m) = (read_in_addr(addr, F), read_in_addr(mask, F));
    // A contiguous mask leaving room for the three addresses vmnet reserves
    // (first, second and last) and one guest.
    let contiguous = m.leading_ones() + m.trailing_zeros() == 32;
    if !contiguous || m.count_ones() > 29 || m.count_ones() < 8 {
        return VMNET_INVALID_ARGUMENT;
    }
    let host = a & !m;
    if host == !m {
        return VMNET_INVALID_ARGUMENT;
    }
    lock(cfg).ipv4 = Some((a, m));
    VMNET_SUCCESS
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn vmnet_network_configuration_set_ipv6_prefix(
    c: *mut c_void,
    prefix: *const libc::in6_addr,
    len: u8,
) -> u32 {
    let cfg = config(c, "vmnet_network_configuration_set_ipv6_prefix");
    if prefix.is_null() || len == 0 || len > 128 {
        return VMNET_INVALID_ARGUMENT;
    }
    // SAFETY: non-NULL in6_addr per the prototype.
    let p = unsafe { (*prefix).s6_addr };
    lock(cfg).ipv6 = Some((p, len));
    VMNET_SUCCESS
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn vmnet_network_configuration_set_mtu(
    c: *mut c_void,
    mtu: u32,
) -> u32 {
    let cfg = config(c, "vmnet_network_configuration_set_mtu");
    // The range our configuration documents (IPv6 minimum to 16-bit max).
    if !(1280..=65535).contains(&mtu) {
        return VMNET_INVALID_ARGUMENT;
    }
    lock(cfg).mtu = Some(mtu);
    VMNET_SUCCESS
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn vmnet_network_configuration_add_dhcp_reservation(
    c: *mut c_void,
    client: *const [u8; 6],
    reservation: *const libc::in_addr,
) -> u32 {
    const F: &str = "vmnet_network_configuration_add_dhcp_reservation";
    let cfg = config(c, F);
    if client.is_null() {
        return VMNET_INVALID_ARGUMENT;
    }
    // SAFETY: non-NULL six-byte ether_addr.
    let mac = unsafe { *client };
    let ip = read_in_addr(reservation, F);
    let mut cfg = lock(cfg);
    if mac == [0; 6]
        || mac[0] & 1 == 1
        || ip == 0
        || cfg.reservations.iter().any(|(m, a)| *m == mac || *a == ip)
    {
        return VMNET_INVALID_ARGUMENT;
    }
    cfg.reservations.push((mac, ip));
    VMNET_SUCCESS
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn vmnet_network_configuration_add_port_forwarding_rule(
    c: *mut c_void,
    protocol: u8,
    family: libc::sa_family_t,
    internal_port: u16,
    external_port: u16,
    address: *const c_void,
) -> u32 {
    let cfg = config(c, "vmnet_network_configuration_add_port_forwarding_rule");
    let family = i32::from(family);
    if !(protocol == 6 || protocol == 17)
        || !(family == libc::AF_INET || family == libc::AF_INET6)
        || internal_port == 0
        || external_port == 0
        || address.is_null()
    {
        return VMNET_INVALID_ARGUMENT;
    }
    let mut cfg = lock(cfg);
    if cfg.rules.contains(&(protocol, external_port)) {
        return VMNET_INVALID_ARGUMENT;
    }
    cfg.rules.push((protocol, external_port));
    VMNET_SUCCESS
}

fn overlaps(a: (u32, u32), b: (u32, u32)) -> bool {
    let m = a.1 & b.1;
    a.0 & m == b.0 & m
}

fn random_ula() -> [u8; 16] {
    let mut p = [0u8; 16];
    p[0] = 0xfd;
    for b in &mut p[1..6] {
        *b = fastrand::u8(..);
    }
    p
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn vmnet_network_create(
    c: *mut c_void,
    status: *mut u32,
) -> *mut c_void {
    let cfg = lock(config(c, "vmnet_network_create"));
    if faults::hit(Point::NetworkCreate) == Some(Action::Fail) {
        set_status(status, VMNET_FAILURE);
        return std::ptr::null_mut();
    }
    let mut allocated = lock(&ALLOCATED);
    let (net, mask) = match cfg.ipv4 {
        Some((a, m)) => {
            let candidate = (a & m, m);
            if allocated
                .iter()
                .any(|(_, n, k)| overlaps(candidate, (*n, *k)))
            {
                set_status(status, VMNET_FAILURE);
                return std::ptr::null_mut();
            }
            candidate
        }
        None => {
            // Like the simulated backend: /24s from 192.168.64.0 upwards,
            // then below it, never 192.168.2.0/24.
            let thirds = (64u32..=255).chain((0u32..64).rev()).filter(|t| *t != 2);
            let mask = 0xffff_ff00;
            let free = thirds
                .map(|t| (0xc0a8_0000 | (t << 8), mask))
                .find(|c| !allocated.iter().any(|(_, n, k)| overlaps(*c, (*n, *k))));
            match free {
                Some(c) => c,
                None => {
                    set_status(status, VMNET_FAILURE);
                    return std::ptr::null_mut();
                }
            }
        }
    };
    let (prefix, prefix_len) = cfg.ipv6.unwrap_or_else(|| (random_ula(), 64));
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    allocated.push((id, net, mask));
    set_status(status, VMNET_SUCCESS);
    cf::alloc(CfBody::Network(Network {
        id,
        mode: cfg.mode,
        net,
        mask,
        prefix,
        prefix_len,
        mtu: cfg.mtu.unwrap_or(1500),
        owner: true,
    }))
}

const KEY_ID: &CStr = c"fake_vmnet_network_id";
const KEY_MODE: &CStr = c"mode";
const KEY_NET: &CStr = c"ipv4_subnet";
const KEY_MASK: &CStr = c"ipv4_mask";
const KEY_PREFIX: &CStr = c"ipv6_prefix";
const KEY_PREFIX_LEN: &CStr = c"ipv6_prefix_length";
const KEY_MTU: &CStr = c"mtu";

fn set_i64(d: XPtr, key: &CStr, v: i64) {
    let o = xalloc(Body::Int64(v));
    xpc::dict_set(d, key, o, "vmnet_network_copy_serialization");
    xrelease(o);
}

fn set_str(d: XPtr, key: &CStr, v: &str) {
    let o = xalloc(Body::Str(std::ffi::CString::new(v).unwrap_or_default()));
    xpc::dict_set(d, key, o, "vmnet_network_copy_serialization");
    xrelease(o);
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn vmnet_network_copy_serialization(
    n: *mut c_void,
    status: *mut u32,
) -> XPtr {
    let n = network(n, "vmnet_network_copy_serialization");
    if faults::hit(Point::CopySerialization) == Some(Action::Null) {
        set_status(status, VMNET_FAILURE);
        return std::ptr::null_mut();
    }
    let d = xalloc(Body::Dict(Dict::default()));
    set_i64(d, KEY_ID, i64::try_from(n.id).unwrap_or(i64::MAX));
    set_i64(d, KEY_MODE, i64::from(n.mode));
    set_str(d, KEY_NET, &Ipv4Addr::from(n.net).to_string());
    set_str(d, KEY_MASK, &Ipv4Addr::from(n.mask).to_string());
    set_str(d, KEY_PREFIX, &Ipv6Addr::from(n.prefix).to_string());
    set_i64(d, KEY_PREFIX_LEN, i64::from(n.prefix_len));
    set_i64(d, KEY_MTU, i64::from(n.mtu));
    set_status(status, VMNET_SUCCESS);
    d
}

fn get_i64(d: XPtr, key: &CStr) -> Option<i64> {
    // SAFETY: a live dictionary and a NUL-terminated key.
    let v = unsafe { xpc::xpc_dictionary_get_value(d, key.as_ptr()) };
    if v.is_null() {
        return None;
    }
    match xpc::obj(v, "vmnet_network_create_with_serialization").body {
        Body::Int64(i) => Some(i),
        _ => None,
    }
}

fn get_str(d: XPtr, key: &CStr) -> Option<String> {
    // SAFETY: a live dictionary and a NUL-terminated key.
    let s = unsafe { xpc::xpc_dictionary_get_string(d, key.as_ptr()) };
    if s.is_null() {
        return None;
    }
    // SAFETY: a string owned by the dictionary.
    Some(unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned())
}

fn parse_serialization(d: XPtr) -> Option<Network> {
    xpc::dict(d, "vmnet_network_create_with_serialization")?;
    let net: Ipv4Addr = get_str(d, KEY_NET)?.parse().ok()?;
    let mask: Ipv4Addr = get_str(d, KEY_MASK)?.parse().ok()?;
    let prefix: Ipv6Addr = get_str(d, KEY_PREFIX)?.parse().ok()?;
    Some(Network {
        id: u64::try_from(get_i64(d, KEY_ID)?).ok()?,
        mode: u32::try_from(get_i64(d, KEY_MODE)?).ok()?,
        net: u32::from(net),
        mask: u32::from(mask),
        prefix: prefix.octets(),
        prefix_len: u8::try_from(get_i64(d, KEY_PREFIX_LEN)?).ok()?,
        mtu: u32::try_from(get_i64(d, KEY_MTU)?).ok()?,
        owner: false,
    })
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn vmnet_network_create_with_serialization(
    s: XPtr,
    status: *mut u32,
) -> *mut c_void {
    match parse_serialization(s) {
        Some(n) => {
            set_status(status, VMNET_SUCCESS);
            cf::alloc(CfBody::Network(n))
        }
        None => {
            set_status(status, VMNET_INVALID_ARGUMENT);
            std::ptr::null_mut()
        }
    }
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn vmnet_network_get_ipv4_subnet(
    n: *mut c_void,
    subnet: *mut libc::in_addr,
    mask: *mut libc::in_addr,
) {
    let n = network(n, "vmnet_network_get_ipv4_subnet");
    if subnet.is_null() || mask.is_null() {
        violation("vmnet_network_get_ipv4_subnet was given a NULL out pointer");
    }
    // SAFETY: non-NULL, and writable per the prototype.
    unsafe { (*subnet).s_addr = n.net.to_be() };
    // SAFETY: as for `subnet`.
    unsafe { (*mask).s_addr = n.mask.to_be() };
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn vmnet_network_get_ipv6_prefix(
    n: *mut c_void,
    prefix: *mut libc::in6_addr,
    len: *mut u8,
) {
    let n = network(n, "vmnet_network_get_ipv6_prefix");
    if prefix.is_null() || len.is_null() {
        violation("vmnet_network_get_ipv6_prefix was given a NULL out pointer");
    }
    // SAFETY: non-NULL, and writable per the prototype.
    unsafe { (*prefix).s6_addr = n.prefix };
    // SAFETY: as for `prefix`.
    unsafe { *len = n.prefix_len };
}

struct Interface {
    network: usize,
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn vmnet_interface_start_with_network(
    n: *mut c_void,
    desc: XPtr,
    queue: DPtr,
    block: *const Block<dyn Fn(u32, XPtr)>,
) -> *mut c_void {
    const F: &str = "vmnet_interface_start_with_network";
    let mtu = network(n, F).mtu;
    if xpc::dict(desc, F).is_none() {
        violation(
            "vmnet_interface_start_with_network: the interface description must be an XPC dictionary",
        );
    }
    queue_check(queue, F);
    // SAFETY: a block of vmnet_start_interface_completion_handler_t.
    let Some(block) = (unsafe { copy_block(block) }) else {
        violation("vmnet_interface_start_with_network was given a NULL completion handler");
    };
    // SAFETY: a live network (checked above); the interface keeps it.
    unsafe { CFRetain(n) };
    let iface = Box::into_raw(Box::new(Interface {
        network: n as usize,
    }));
    register(iface as usize, Family::Interface);
    if faults::hit(Point::InterfaceStart) == Some(Action::Fail) {
        // A start that fails: the completion gets VMNET_FAILURE and no
        // parameters, and the interface is vmnet's to dispose of (the
        // caller is not expected to stop it).
        let iface_addr = iface as usize;
        enqueue(
            queue as usize,
            Box::new(move || {
                block.get().call((VMNET_FAILURE, std::ptr::null_mut()));
                unregister(iface_addr);
                // SAFETY: registered above and unregistered just now; no
                // one else frees it.
                let iface = unsafe { Box::from_raw(iface_addr as *mut Interface) };
                // SAFETY: the reference taken at start.
                unsafe { CFRelease(iface.network as *const c_void) };
            }),
        );
        return iface.cast();
    }
    enqueue(
        queue as usize,
        Box::new(move || {
            let params = xalloc(Body::Dict(Dict::default()));
            let mac = format!(
                "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                fastrand::u8(..),
                fastrand::u8(..),
                fastrand::u8(..),
                fastrand::u8(..),
                fastrand::u8(..)
            );
            set_str(params, c"vmnet_mac_address", &mac);
            set_i64(params, c"vmnet_mtu", i64::from(mtu));
            block.get().call((VMNET_SUCCESS, params));
            xrelease(params);
        }),
    );
    iface.cast()
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn vmnet_stop_interface(
    interface: *mut c_void,
    queue: DPtr,
    block: *const Block<dyn Fn(u32)>,
) -> u32 {
    const F: &str = "vmnet_stop_interface";
    check(interface as usize, Family::Interface, F);
    queue_check(queue, F);
    // SAFETY: a block of vmnet_interface_completion_handler_t.
    let Some(block) = (unsafe { copy_block(block) }) else {
        violation("vmnet_stop_interface was given a NULL completion handler");
    };
    unregister(interface as usize);
    // SAFETY: registered until just now; stopping ends the interface.
    let iface = unsafe { Box::from_raw(interface.cast::<Interface>()) };
    // SAFETY: the reference taken at start.
    unsafe { CFRelease(iface.network as *const c_void) };
    enqueue(
        queue as usize,
        Box::new(move || block.get().call((VMNET_SUCCESS,))),
    );
    VMNET_SUCCESS
}
