//! The boundary: no panic crosses into C. A call's body runs inside `catch_unwind`; a panic
//! becomes `SY_ERR_PANIC` (with the panic's message) for calls that report errors, or the
//! call's neutral value for accessors.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::error::{self, FfiError, SY_ERR_PANIC, SY_OK, sy_error};

/// Runs a call that reports errors through `err_out`: `SY_OK` and no error on success.
pub fn call(err_out: *mut *mut sy_error, body: impl FnOnce() -> Result<(), FfiError>) -> i32 {
    error::clear(err_out);
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => SY_OK,
        Ok(Err(err)) => error::report(err, err_out),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_string());
            error::report(
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
