//! Engine errors as JS errors: `code` tells the kind, the message says what,
//! where and which value. The TS layer turns codes into error classes.

use napi::Status;
use netreplay_core::Error as CoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Io,
    Network,
    Malformed,
    Layout,
    InvalidArgument,
    State,
    Native(Status),
}

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        match self {
            Code::Io => "ERR_NETREPLAY_IO",
            Code::Network => "ERR_NETREPLAY_NETWORK",
            Code::Malformed => "ERR_NETREPLAY_MALFORMED",
            Code::Layout => "ERR_NETREPLAY_LAYOUT",
            Code::InvalidArgument => "ERR_NETREPLAY_INVALID_ARGUMENT",
            Code::State => "ERR_NETREPLAY_STATE",
            Code::Native(status) => status.as_ref(),
        }
    }
}

impl From<Status> for Code {
    fn from(status: Status) -> Self {
        Code::Native(status)
    }
}

pub fn code_of(err: &CoreError) -> Code {
    match err {
        CoreError::Io { .. } => Code::Io,
        CoreError::Network { .. } => Code::Network,
        CoreError::Malformed { .. } => Code::Malformed,
        CoreError::Layout { .. } => Code::Layout,
        CoreError::InvalidArgument { .. } => Code::InvalidArgument,
        CoreError::State(_) => Code::State,
    }
}

pub fn to_napi(err: CoreError) -> napi::Error<Code> {
    napi::Error::new(code_of(&err), err.to_string())
}
