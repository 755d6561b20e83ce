//! The gRPC health protocol (`grpc.health.v1.Health/Check`), as much of it as a check needs:
//! the request's one string field, the answer's one enum, and the gRPC message framing
//! around them. Hand-encoded: two fields do not need a protobuf library in the router.

use bytes::{BufMut, Bytes, BytesMut};

/// The method every gRPC health server answers.
pub const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

/// `HealthCheckResponse.ServingStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving {
    Unknown,
    Serving,
    NotServing,
    ServiceUnknown,
    Other(u64),
}

impl Serving {
    fn from_number(n: u64) -> Serving {
        match n {
            0 => Serving::Unknown,
            1 => Serving::Serving,
            2 => Serving::NotServing,
            3 => Serving::ServiceUnknown,
            n => Serving::Other(n),
        }
    }

    pub fn name(self) -> String {
        match self {
            Serving::Unknown => "UNKNOWN".to_string(),
            Serving::Serving => "SERVING".to_string(),
            Serving::NotServing => "NOT_SERVING".to_string(),
            Serving::ServiceUnknown => "SERVICE_UNKNOWN".to_string(),
            Serving::Other(n) => format!("status {n}"),
        }
    }
}

/// The framed request: `HealthCheckRequest { service }` in one uncompressed gRPC message.
pub fn request_body(service: &str) -> Bytes {
    let mut message = BytesMut::new();
    if !service.is_empty() {
        message.put_u8(0x0a); // field 1, length-delimited
        put_varint(&mut message, service.len() as u64);
        message.put_slice(service.as_bytes());
    }
    let mut framed = BytesMut::with_capacity(5 + message.len());
    framed.put_u8(0); // not compressed
    framed.put_u32(message.len() as u32);
    framed.put_slice(&message);
    framed.freeze()
}

/// The status in a framed `HealthCheckResponse`, or why it cannot be read.
pub fn serving_status(body: &[u8]) -> Result<Serving, String> {
    let [flag, a, b, c, d, message @ ..] = body else {
        return Err(format!(
            "answer of {} bytes holds no gRPC message",
            body.len()
        ));
    };
    if *flag != 0 {
        return Err("the answer is compressed, which the check did not ask for".to_string());
    }
    let len = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
    let Some(mut message) = message.get(..len) else {
        return Err(format!(
            "message of {len} bytes announced, {} sent",
            message.len()
        ));
    };
    // proto3: an absent field is its default, UNKNOWN.
    let mut status = Serving::Unknown;
    while let Some((&tag, rest)) = message.split_first() {
        message = rest;
        let (field, wire) = (tag >> 3, tag & 7);
        match wire {
            0 => {
                let value = varint(&mut message)?;
                if field == 1 {
                    status = Serving::from_number(value);
                }
            }
            2 => {
                let len = varint(&mut message)? as usize;
                message = message
                    .get(len..)
                    .ok_or_else(|| "a field runs past the message".to_string())?;
            }
            _ => return Err(format!("unexpected wire type {wire} in the answer")),
        }
    }
    Ok(status)
}

fn put_varint(out: &mut BytesMut, mut n: u64) {
    while n >= 0x80 {
        out.put_u8((n as u8) | 0x80);
        n >>= 7;
    }
    out.put_u8(n as u8);
}

fn varint(input: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input
            .split_first()
            .ok_or_else(|| "a number runs past the message".to_string())?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err("a number longer than 10 bytes".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_frames_the_service_name() {
        assert_eq!(&request_body("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(
            &request_body("api")[..],
            &[0, 0, 0, 0, 5, 0x0a, 3, b'a', b'p', b'i']
        );
    }

    #[test]
    fn answers_are_read_and_bad_ones_named() {
        assert_eq!(serving_status(&[0, 0, 0, 0, 2, 8, 1]), Ok(Serving::Serving));
        assert_eq!(
            serving_status(&[0, 0, 0, 0, 2, 8, 2]),
            Ok(Serving::NotServing)
        );
        // An empty message is the default: UNKNOWN.
        assert_eq!(serving_status(&[0, 0, 0, 0, 0]), Ok(Serving::Unknown));
        assert!(
            serving_status(&[0, 0])
                .unwrap_err()
                .contains("no gRPC message")
        );
        assert!(
            serving_status(&[0, 0, 0, 0, 9, 8])
                .unwrap_err()
                .contains("announced")
        );
        assert!(
            serving_status(&[1, 0, 0, 0, 0])
                .unwrap_err()
                .contains("compressed")
        );
        assert!(serving_status(&[0, 0, 0, 0, 2, 8, 0x80]).is_err());
    }
}
