//! The boundary: no panic crosses into C. A call's body runs inside `catch_unwind`; a panic
//! becomes `SY_ERR_PANIC` (with the panic's message) for calls that report errors, or the
//! call's neutral value for accessors.

use std::panic::{AssertUnwindSafe, catch_unwind};

use std::ffi::CString;

use crate::error::{FfiError, SY_ERR_PANIC, SY_OK, sy_error};
use crate::handle::{self, Kind};

/// Runs a call that reports errors through `err_out`: `SY_OK` and no error on success.
pub fn call(err_out: *mut *mut sy_error, body: impl FnOnce() -> Result<(), FfiError>) -> i32 {
    clear(err_out);
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => SY_OK,
        Ok(Err(err)) => report(err, err_out),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_string());
            report(
                FfiError::new(
                    SY_ERR_PANIC,
                    format!("switchyard-ffi bug (please report it): {what}"),
                ),
                err_out,
            )
        }
    }
}

/// Runs an accessor: its value, or `fallback` if it panicked.
pub fn value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// Stores `err` in `*out` (when `out` is not NULL) and returns its kind.
pub fn report(err: FfiError, out: *mut *mut sy_error) -> i32 {
    let kind = err.kind;
    if !out.is_null() {
        // A message with a NUL byte in it loses what follows (C strings end there).
        let text = err
            .message
            .split('\0')
            .next()
            .unwrap_or_default()
            .to_string();
        let error = sy_error {
            kind,
            retryable: err.retryable,
            message: CString::new(text).unwrap_or_default(),
        };
        let ptr = handle::give(error, Kind::Error);
        #[allow(unsafe_code)]
        // SAFETY: the caller passes a writable `sy_error **` (documented) or NULL, checked above.
        unsafe {
            *out = ptr;
        }
    }
    kind
}

/// Sets `*out` to NULL (when given): a call that succeeds leaves no error behind.
pub fn clear(out: *mut *mut sy_error) {
    if !out.is_null() {
        #[allow(unsafe_code)]
        // SAFETY: as in `report`: a writable `sy_error **` or NULL.
        unsafe {
            *out = std::ptr::null_mut();
        }
    }
}
