//! How the XPC fake carries a message between processes: a deep copy of
//! the dictionary in a small tagged binary form, in length-prefixed frames.

use std::ffi::CString;
use std::io::{self, Read, Write};
use std::sync::Mutex;

use super::violation;
use super::xpc::{Body, Dict, XPtr, alloc, obj};

/// A message that expects no reply.
pub(crate) const MESSAGE: u8 = 1;
/// A message that expects a reply (carries an id).
pub(crate) const REQUEST: u8 = 2;
/// A reply to the request with the same id.
pub(crate) const REPLY: u8 = 3;

/// Largest frame accepted, far above anything the broker sends.
const MAX_FRAME: usize = 16 << 20;

pub(crate) fn encode(p: XPtr, out: &mut Vec<u8>) {
    match &obj(p, "xpc_connection_send_message").body {
        Body::Null => out.push(0),
        Body::Bool(b) => {
            out.push(1);
            out.push(u8::from(*b));
        }
        Body::Int64(v) => {
            out.push(2);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Body::UInt64(v) => {
            out.push(3);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Body::Double(v) => {
            out.push(4);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Body::Str(s) => {
            out.push(5);
            bytes(s.as_bytes(), out);
        }
        Body::Array(a) => {
            let items = super::lock(a).clone();
            out.push(6);
            out.extend_from_slice(&len32(items.len()));
            for v in items {
                encode(v as XPtr, out);
            }
        }
        Body::Dict(d) => {
            let items = super::lock(&d.entries).clone();
            out.push(7);
            out.extend_from_slice(&len32(items.len()));
            for (k, v) in items {
                bytes(k.as_bytes(), out);
                encode(v as XPtr, out);
            }
        }
        Body::Conn(_) => violation(
            "a connection object was put in a message; connections cannot be sent (send an \
             endpoint instead, xpc/endpoint.h)",
        ),
    }
}

/// A length as the wire's little-endian u32. Nothing the fakes send comes
/// near 4 GiB; a longer one is written as u32::MAX, more bytes than follow,
/// so the reader fails instead of misreading.
fn len32(n: usize) -> [u8; 4] {
    u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes()
}

fn bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&len32(b.len()));
    out.extend_from_slice(b);
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<usize> {
        let b = self.take(4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
    fn u64(&mut self) -> Option<[u8; 8]> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(a)
    }
    fn cstring(&mut self) -> Option<CString> {
        let n = self.u32()?;
        CString::new(self.take(n)?.to_vec()).ok()
    }
}

/// Decodes a value (+1). `dict` gives the top-level dictionary its
/// connection fields.
pub(crate) fn decode(buf: &[u8], top: Dict) -> Option<XPtr> {
    let mut r = Reader(buf);
    if r.take(1)? != [7] {
        return None;
    }
    let d = alloc(Body::Dict(top));
    if fill_dict(&mut r, d).is_none() {
        super::xpc::release(d);
        return None;
    }
    Some(d)
}

fn fill_dict(r: &mut Reader<'_>, d: XPtr) -> Option<()> {
    let n = r.u32()?;
    for _ in 0..n {
        let k = r.cstring()?;
        let v = value(r)?;
        super::xpc::dict_set(d, &k, v, "fake XPC transport");
        super::xpc::release(v);
    }
    Some(())
}

fn value(r: &mut Reader<'_>) -> Option<XPtr> {
    let tag = r.take(1)?[0];
    Some(match tag {
        0 => alloc(Body::Null),
        1 => alloc(Body::Bool(r.take(1)?[0] != 0)),
        2 => alloc(Body::Int64(i64::from_le_bytes(r.u64()?))),
        3 => alloc(Body::UInt64(u64::from_le_bytes(r.u64()?))),
        4 => alloc(Body::Double(f64::from_le_bytes(r.u64()?))),
        5 => alloc(Body::Str(r.cstring()?)),
        6 => {
            let n = r.u32()?;
            let mut items = Vec::new();
            for _ in 0..n {
                match value(r) {
                    Some(v) => items.push(v as usize),
                    None => {
                        for v in items {
                            super::xpc::release(v as XPtr);
                        }
                        return None;
                    }
                }
            }
            alloc(Body::Array(Mutex::new(items)))
        }
        7 => {
            let d = alloc(Body::Dict(Dict::default()));
            if fill_dict(r, d).is_none() {
                super::xpc::release(d);
                return None;
            }
            d
        }
        _ => return None,
    })
}

pub(crate) fn write_frame(w: &mut impl Write, kind: u8, id: u64, payload: &[u8]) -> io::Result<()> {
    let mut f = Vec::with_capacity(13 + payload.len());
    f.extend_from_slice(&len32(payload.len() + 9));
    f.push(kind);
    f.extend_from_slice(&id.to_le_bytes());
    f.extend_from_slice(payload);
    w.write_all(&f)
}

/// `None` at end of stream (or on a malformed frame).
pub(crate) fn read_frame(r: &mut impl Read) -> Option<(u8, u64, Vec<u8>)> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).ok()?;
    let len = u32::from_le_bytes(len) as usize;
    if !(9..=MAX_FRAME).contains(&len) {
        return None;
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).ok()?;
    let kind = buf[0];
    let mut id = [0u8; 8];
    id.copy_from_slice(&buf[1..9]);
    Some((kind, u64::from_le_bytes(id), buf[9..].to_vec()))
}
