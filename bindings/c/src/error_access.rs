//! The `sy_error` accessors C calls: kind, retryable, message, free.

use std::ffi::c_char;

use crate::error::{SY_ERR_INVALID_HANDLE, SY_ERR_PANIC, sy_error};
use crate::handle::{self, Kind};

/// The error's kind (`SY_ERR_*`); `SY_ERR_INVALID_HANDLE` for a pointer that is not a live
/// error.
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_error_kind(err: *const sy_error) -> i32 {
    crate::guard::value(SY_ERR_PANIC, || {
        handle::get(err, Kind::Error).map_or(SY_ERR_INVALID_HANDLE, |e| e.kind)
    })
}

/// Whether the same call could succeed if made again later.
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_error_retryable(err: *const sy_error) -> bool {
    crate::guard::value(false, || {
        handle::get(err, Kind::Error).is_ok_and(|e| e.retryable)
    })
}

/// What went wrong, in words (UTF-8, owned by the error); NULL for a pointer that is not a
/// live error.
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_error_message(err: *const sy_error) -> *const c_char {
    crate::guard::value(std::ptr::null(), || {
        handle::get(err, Kind::Error).map_or(std::ptr::null(), |e| e.message.as_ptr())
    })
}

/// Frees an error (NULL is fine; a pointer that is not a live error is ignored).
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_error_free(err: *mut sy_error) {
    if err.is_null() {
        return;
    }
    crate::guard::value((), || {
        let _ = handle::take(err, Kind::Error);
    })
}
