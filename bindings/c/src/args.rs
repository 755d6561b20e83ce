//! Reading what C passes in: NUL-terminated UTF-8 strings and byte buffers, each checked, each
//! refusal naming the argument.

use std::ffi::{CStr, c_char};

use crate::error::FfiError;

/// A C string argument as `&str`: NULL or not UTF-8 is an error naming `what`.
pub fn text<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, FfiError> {
    if ptr.is_null() {
        return Err(FfiError::invalid(format!("{what} is NULL")));
    }
    #[allow(unsafe_code)]
    // SAFETY: not NULL (checked); the caller passes a NUL-terminated string that lives for
    // the call (documented for every `const char *` argument).
    let c = unsafe { CStr::from_ptr(ptr) };
    c.to_str()
        .map_err(|err| FfiError::invalid(format!("{what} is not UTF-8: {err}")))
}

/// A byte buffer argument: NULL is allowed only with length 0.
pub fn bytes<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a [u8], FfiError> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(FfiError::invalid(format!(
            "{what} is NULL with a length of {len}"
        )));
    }
    #[allow(unsafe_code)]
    // SAFETY: not NULL (checked); the caller passes `len` readable bytes that live for the
    // call (documented).
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Writes `value` to an out-parameter, which must not be NULL.
pub fn put<T>(out: *mut T, value: T, what: &str) -> Result<(), FfiError> {
    if out.is_null() {
        return Err(FfiError::invalid(format!(
            "{what} is NULL: nowhere to put the result"
        )));
    }
    #[allow(unsafe_code)]
    // SAFETY: not NULL (checked); the caller passes a writable `T *` (documented).
    unsafe {
        out.write(value);
    }
    Ok(())
}

/// Checks that an out-parameter can be written, before doing work whose result would be lost.
pub fn writable<T>(out: *mut T, what: &str) -> Result<(), FfiError> {
    match out.is_null() {
        true => Err(FfiError::invalid(format!(
            "{what} is NULL: nowhere to put the result"
        ))),
        false => Ok(()),
    }
}
