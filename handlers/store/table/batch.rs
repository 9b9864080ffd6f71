//! Entity group transactions: one changeset of inserts and (conditional) replaces within
//! one partition, written as the `multipart/mixed` body of `POST /$batch`, and the
//! service's multipart answer read back into per-operation statuses and ETags.

use super::super::StoreError;
use super::entity::{entity_path, string, Entity};

/// The service takes at most this many operations in one changeset.
pub(crate) const MAX_OPERATIONS: usize = 100;

/// One operation of a changeset.
#[derive(Debug, Clone)]
pub(crate) enum Operation {
    /// Insert Entity: fails with 409 if the entity exists.
    Insert(Entity),
    /// Update Entity (replace) if its ETag still matches (`*` for any): 412 if it changed,
    /// 404 if it is gone.
    Replace { entity: Entity, if_match: String },
    /// Insert Or Replace Entity: unconditional.
    Upsert(Entity),
    /// Delete Entity whatever its version (`If-Match: *`): 404 if it is gone. The entity
    /// carries only its keys.
    Delete(Entity),
}

impl Operation {
    fn entity(&self) -> &Entity {
        match self {
            Operation::Insert(entity) | Operation::Upsert(entity) | Operation::Delete(entity) => {
                entity
            }
            Operation::Replace { entity, .. } => entity,
        }
    }
}

/// Boundaries of one batch request (fresh per request: they must not occur in the body).
pub(crate) struct Boundaries {
    pub batch: String,
    pub changeset: String,
}

impl Boundaries {
    pub(crate) fn new() -> Self {
        Boundaries {
            batch: format!("batch_{}", uuid::Uuid::new_v4()),
            changeset: format!("changeset_{}", uuid::Uuid::new_v4()),
        }
    }
}

/// The request body. `base` is the table endpoint as sub-request URLs must spell it (with the
/// account segment for path-style endpoints). JSON bodies stay on one line.
pub(crate) fn request_body(
    base: &str,
    table: &str,
    operations: &[Operation],
    boundaries: &Boundaries,
) -> Result<String, StoreError> {
    let base = base.trim_end_matches('/');
    let mut body = String::new();
    body.push_str(&format!("--{}\r\n", boundaries.batch));
    body.push_str(&format!(
        "Content-Type: multipart/mixed; boundary={}\r\n\r\n",
        boundaries.changeset
    ));
    for operation in operations {
        let entity = operation.entity();
        let json = serde_json::to_string(entity).map_err(StoreError::from)?;
        let path = || -> Result<String, StoreError> {
            Ok(entity_path(
                table,
                &string(entity, "PartitionKey")?,
                &string(entity, "RowKey")?,
            ))
        };
        let (line, if_match) = match operation {
            Operation::Insert(_) => (format!("POST {base}/{table} HTTP/1.1"), None),
            Operation::Replace { if_match, .. } => (
                format!("PUT {base}/{} HTTP/1.1", path()?),
                Some(if_match.as_str()),
            ),
            Operation::Upsert(_) => (format!("PUT {base}/{} HTTP/1.1", path()?), None),
            Operation::Delete(_) => (format!("DELETE {base}/{} HTTP/1.1", path()?), Some("*")),
        };
        let delete = matches!(operation, Operation::Delete(_));
        body.push_str(&format!("--{}\r\n", boundaries.changeset));
        body.push_str(
            "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n",
        );
        body.push_str(&line);
        body.push_str("\r\n");
        if !delete {
            body.push_str("Content-Type: application/json\r\n");
        }
        body.push_str("Accept: application/json;odata=nometadata\r\n");
        if !delete {
            body.push_str("Prefer: return-no-content\r\n");
        }
        body.push_str("DataServiceVersion: 3.0;\r\n");
        if let Some(etag) = if_match {
            body.push_str(&format!("If-Match: {etag}\r\n"));
        }
        body.push_str("\r\n");
        if !delete {
            body.push_str(&json);
        }
        body.push_str("\r\n");
    }
    body.push_str(&format!("--{}--\r\n", boundaries.changeset));
    body.push_str(&format!("--{}--\r\n", boundaries.batch));
    Ok(body)
}

/// One sub-response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Part {
    pub status: u16,
    pub etag: Option<String>,
    pub body: String,
}

/// How a changeset ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// Every operation applied; the ETag each one produced, in order.
    Applied(Vec<Option<String>>),
    /// Nothing applied: the first failing operation's status and the service's message.
    Failed {
        status: u16,
        code: String,
        message: String,
    },
}

impl Outcome {
    /// The ETags when every operation applied, else a backend error saying what failed.
    pub(crate) fn applied(self, what: &str) -> Result<Vec<Option<String>>, StoreError> {
        match self {
            Outcome::Applied(etags) => Ok(etags),
            Outcome::Failed {
                status,
                code,
                message,
            } => Err(StoreError::Backend(format!(
                "{what}: {status} {code} {message}"
            ))),
        }
    }
}

/// Reads the sub-responses out of a batch response body (any boundary, `\r\n` or `\n`).
pub(crate) fn parse_parts(text: &str) -> Vec<Part> {
    enum State {
        Outside,
        Headers,
        Body,
    }
    let mut parts: Vec<Part> = Vec::new();
    let mut state = State::Outside;
    for line in text.split('\n').map(|l| l.trim_end_matches('\r')) {
        if line.starts_with("--") {
            state = State::Outside;
            continue;
        }
        match state {
            State::Outside | State::Body if line.starts_with("HTTP/1.") => {
                let status = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                parts.push(Part {
                    status,
                    etag: None,
                    body: String::new(),
                });
                state = State::Headers;
            }
            State::Headers if line.is_empty() => state = State::Body,
            State::Headers => {
                if let Some((name, value)) = line.split_once(':') {
                    if name.trim().eq_ignore_ascii_case("etag") {
                        if let Some(part) = parts.last_mut() {
                            part.etag = Some(value.trim().to_string());
                        }
                    }
                }
            }
            State::Body => {
                if let Some(part) = parts.last_mut() {
                    part.body.push_str(line);
                    part.body.push('\n');
                }
            }
            State::Outside => {}
        }
    }
    parts
}

/// The outcome of a changeset of `expected` operations from its response body.
pub(crate) fn outcome(text: &str, expected: usize) -> Result<Outcome, StoreError> {
    let parts = parse_parts(text);
    if let Some(failed) = parts.iter().find(|p| !(200..300).contains(&p.status)) {
        let (code, message) = odata_error(&failed.body);
        return Ok(Outcome::Failed {
            status: failed.status,
            code,
            message,
        });
    }
    if parts.len() != expected {
        return Err(StoreError::Backend(format!(
            "batch response has {} parts for {expected} operations",
            parts.len()
        )));
    }
    Ok(Outcome::Applied(
        parts.into_iter().map(|p| p.etag).collect(),
    ))
}

/// The `odata.error` code and message of an error body (empty when there is none).
pub(crate) fn odata_error(body: &str) -> (String, String) {
    let json: serde_json::Value = match serde_json::from_str(body.trim()) {
        Ok(json) => json,
        Err(_) => {
            // some errors (authorization among them) come as XML: <Code>…</Code><Message>…
            let element = |name: &str| {
                let open = format!("<{name}>");
                body.split_once(&open)
                    .and_then(|(_, rest)| rest.split_once(&format!("</{name}>")))
                    .map(|(text, _)| text.lines().next().unwrap_or_default().to_string())
            };
            return match (element("Code"), element("Message")) {
                (Some(code), Some(message)) => (code, message),
                _ => (String::new(), body.trim().chars().take(300).collect()),
            };
        }
    };
    let error = json.get("odata.error").or_else(|| json.get("error"));
    let code = error
        .and_then(|e| e.get("code"))
        .and_then(|c| c.as_str())
        .unwrap_or_default()
        .to_string();
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(|m| m.get("value").or(Some(m)))
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    // the service appends request id and time on further lines
    let message = message.lines().next().unwrap_or_default().to_string();
    (code, message)
}

#[cfg(test)]
mod tests {
    use super::super::entity::entity;
    use super::*;

    #[test]
    fn the_body_has_one_changeset_with_each_operation() {
        let boundaries = Boundaries {
            batch: "batch_1".into(),
            changeset: "changeset_2".into(),
        };
        let operations = vec![
            Operation::Replace {
                entity: entity("p", "head"),
                if_match: "W/\"datetime'x'\"".into(),
            },
            Operation::Insert(entity("p", "audit_1")),
        ];
        let body = request_body("http://h:1/acct/", "T", &operations, &boundaries).expect("body");
        let expected = "--batch_1\r\nContent-Type: multipart/mixed; boundary=changeset_2\r\n\r\n\
            --changeset_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
            PUT http://h:1/acct/T(PartitionKey='p',RowKey='head') HTTP/1.1\r\nContent-Type: application/json\r\n\
            Accept: application/json;odata=nometadata\r\nPrefer: return-no-content\r\nDataServiceVersion: 3.0;\r\n\
            If-Match: W/\"datetime'x'\"\r\n\r\n{\"PartitionKey\":\"p\",\"RowKey\":\"head\"}\r\n\
            --changeset_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
            POST http://h:1/acct/T HTTP/1.1\r\nContent-Type: application/json\r\n\
            Accept: application/json;odata=nometadata\r\nPrefer: return-no-content\r\nDataServiceVersion: 3.0;\r\n\r\n\
            {\"PartitionKey\":\"p\",\"RowKey\":\"audit_1\"}\r\n--changeset_2--\r\n--batch_1--\r\n";
        assert_eq!(body, expected);
    }

    #[test]
    fn a_delete_names_the_entity_matches_any_version_and_has_no_body() {
        let boundaries = Boundaries {
            batch: "batch_1".into(),
            changeset: "changeset_2".into(),
        };
        let operations = vec![Operation::Delete(entity("letters", "id_x"))];
        let body = request_body("http://h:1/acct", "T", &operations, &boundaries).expect("body");
        let expected = "--batch_1\r\nContent-Type: multipart/mixed; boundary=changeset_2\r\n\r\n\
            --changeset_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
            DELETE http://h:1/acct/T(PartitionKey='letters',RowKey='id_x') HTTP/1.1\r\n\
            Accept: application/json;odata=nometadata\r\nDataServiceVersion: 3.0;\r\nIf-Match: *\r\n\r\n\r\n\
            --changeset_2--\r\n--batch_1--\r\n";
        assert_eq!(body, expected);
    }

    #[test]
    fn errors_are_read_from_json_or_xml() {
        let xml = "<?xml version=\"1.0\"?>\n<Error>\n  <Code>AuthorizationFailure</Code>\n  \
            <Message>Server failed to authenticate the request.\nRequestId:1</Message>\n</Error>";
        assert_eq!(
            odata_error(xml),
            (
                "AuthorizationFailure".into(),
                "Server failed to authenticate the request.".into()
            )
        );
        let json = r#"{"odata.error":{"code":"TableNotFound","message":{"lang":"en-US","value":"The table specified does not exist.\nRequestId:1"}}}"#;
        assert_eq!(
            odata_error(json),
            (
                "TableNotFound".into(),
                "The table specified does not exist.".into()
            )
        );
    }

    #[test]
    fn responses_give_etags_or_the_failure() {
        let ok = "--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_2\r\n\r\n\
            --changesetresponse_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
            HTTP/1.1 204 No Content\r\nX-Content-Type-Options: nosniff\r\nDataServiceVersion: 3.0;\r\n\
            ETag: W/\"0x5B168C7B6E589D2\"\r\n\r\n\r\n\
            --changesetresponse_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
            HTTP/1.1 204 No Content\r\nETag: W/\"0x5B168C7B6E589D3\"\r\n\r\n\r\n\
            --changesetresponse_2--\r\n--batchresponse_1--\r\n";
        assert_eq!(
            outcome(ok, 2).expect("parse"),
            Outcome::Applied(vec![
                Some("W/\"0x5B168C7B6E589D2\"".into()),
                Some("W/\"0x5B168C7B6E589D3\"".into())
            ])
        );
        let failed = "--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_2\r\n\r\n\
            --changesetresponse_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
            HTTP/1.1 412 Precondition Failed\r\nContent-ID: 1\r\nContent-Type: application/json;odata=minimalmetadata;charset=utf-8\r\n\r\n\
            {\"odata.error\":{\"code\":\"UpdateConditionNotSatisfied\",\"message\":{\"lang\":\"en-US\",\"value\":\"0:The update condition specified in the request was not satisfied.\\nRequestId:x\\nTime:y\"}}}\r\n\
            --changesetresponse_2--\r\n--batchresponse_1--\r\n";
        assert_eq!(
            outcome(failed, 2).expect("parse"),
            Outcome::Failed {
                status: 412,
                code: "UpdateConditionNotSatisfied".into(),
                message: "0:The update condition specified in the request was not satisfied."
                    .into()
            }
        );
    }
}
