//! Opaque handles: a `Box` leaked to C, remembered in a registry of live handles with its
//! type. Every call checks the pointer it is given against the registry before touching it,
//! so a pointer already freed, never handed out, or of another type is refused with
//! `SY_ERR_INVALID_HANDLE` (a pointer freed and handed out again for a new object of the same
//! type cannot be told apart: that is the one misuse it cannot see).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use crate::error::FfiError;

/// What a handle points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Client,
    Response,
    Session,
    Event,
    Error,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Client => "sy_client",
            Kind::Response => "sy_response",
            Kind::Session => "sy_session",
            Kind::Event => "sy_event",
            Kind::Error => "sy_error",
        }
    }
}

/// The registry's keys are the handles' addresses XOR this, not the addresses themselves: a
/// leak checker (valgrind) scanning memory for pointers then does not find a forgotten handle
/// through the registry, and reports it as lost — as it would any `malloc` never freed.
const HIDE: usize = 0x5a5a_5a5a_5a5a_5a5a_u64 as usize;

fn key<T>(ptr: *const T) -> usize {
    ptr as usize ^ HIDE
}

static LIVE: LazyLock<Mutex<HashMap<usize, Kind>>> = LazyLock::new(Default::default);

fn live() -> std::sync::MutexGuard<'static, HashMap<usize, Kind>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Hands `value` to C.
pub fn give<T>(value: T, kind: Kind) -> *mut T {
    let ptr = Box::into_raw(Box::new(value));
    live().insert(key(ptr), kind);
    ptr
}

fn check<T>(live: &HashMap<usize, Kind>, ptr: *const T, kind: Kind) -> Result<(), FfiError> {
    if ptr.is_null() {
        return Err(FfiError::invalid_handle(format!("{} is NULL", kind.name())));
    }
    match live.get(&key(ptr)) {
        Some(k) if *k == kind => Ok(()),
        Some(other) => Err(FfiError::invalid_handle(format!(
            "a {} was passed where a {} was expected",
            other.name(),
            kind.name()
        ))),
        None => Err(FfiError::invalid_handle(format!(
            "this {} is not live (already freed, or never made by this library)",
            kind.name()
        ))),
    }
}

/// Borrows a live handle of `kind`.
pub fn get<'a, T>(ptr: *const T, kind: Kind) -> Result<&'a T, FfiError> {
    check(&live(), ptr, kind)?;
    #[allow(unsafe_code)]
    // SAFETY: `ptr` is in the registry, so it came from `give` for a `T` of this kind and has
    // not been taken back; the caller keeps it alive for the call (documented ownership).
    Ok(unsafe { &*ptr })
}

/// Takes a live handle of `kind` back from C (to free it).
pub fn take<T>(ptr: *mut T, kind: Kind) -> Result<T, FfiError> {
    {
        // One lock for the check and the removal: two threads freeing the same handle
        // cannot both pass.
        let mut live = live();
        check(&live, ptr, kind)?;
        live.remove(&key(ptr));
    }
    #[allow(unsafe_code)]
    // SAFETY: `ptr` came from `Box::into_raw` in `give` and was just removed from the
    // registry, so it is turned back into its `Box` exactly once.
    Ok(*unsafe { Box::from_raw(ptr) })
}
