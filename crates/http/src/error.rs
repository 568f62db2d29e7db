//! The single mapping from [`LogicalError`] to HTTP status and error body.

use arca_sdk::LogicalError;
use serde_json::json;

pub fn status_of(e: &LogicalError) -> u16 {
    match e {
        LogicalError::InvalidRequest(_) | LogicalError::InvalidCredentials(_) => 400,
        LogicalError::PermissionDenied => 403,
        LogicalError::NotFound | LogicalError::UnsupportedPath(_) => 404,
        LogicalError::UnsupportedOperation => 405,
        LogicalError::Sealed => 503,
        LogicalError::ReadOnly => 503,
        LogicalError::Status { status, .. } => *status,
        LogicalError::Internal(_) => 500,
    }
}

/// `{"errors": [...]}`; a plain 404 has an empty list, as in Vault.
pub fn body_of(e: &LogicalError) -> serde_json::Value {
    match e {
        LogicalError::NotFound => json!({ "errors": [] }),
        LogicalError::Sealed => json!({ "errors": ["Vault is sealed"] }),
        LogicalError::ReadOnly => {
            json!({ "errors": ["this node cannot write and no active node is reachable; retry shortly"] })
        }
        LogicalError::Internal(m) => json!({ "errors": [format!("internal error: {m}")] }),
        other => json!({ "errors": [other.to_string()] }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_match_vault() {
        assert_eq!(status_of(&LogicalError::invalid("x")), 400);
        assert_eq!(status_of(&LogicalError::PermissionDenied), 403);
        assert_eq!(status_of(&LogicalError::NotFound), 404);
        assert_eq!(status_of(&LogicalError::UnsupportedOperation), 405);
        assert_eq!(status_of(&LogicalError::Sealed), 503);
        assert_eq!(body_of(&LogicalError::NotFound), json!({"errors": []}));
        assert_eq!(
            body_of(&LogicalError::PermissionDenied),
            json!({"errors": ["permission denied"]})
        );
    }
}
