//! The Device Update agent's reported `deviceUpdate.agent` properties, both agent generations.
//!
//! Agent 1.0 (`deviceUpdate;1`) reports `extendedResultCode` as an integer; agent 1.1
//! (`deviceUpdate;2`) reports `extendedResultCodes` as comma-separated 8-digit hex. The
//! installed update id is a JSON string holding `{provider, name, version}`.

use crate::host::json::{as_i64, as_object, as_text, get_loose, kind_of, unwrap_text};
use chrono::{DateTime, Utc};
use rollout_core::UpdateId;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The agent's state (`ADUCITF_State`); the cloud only ever sees 0, 6 and 255.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AgentState {
    /// 0: idle; with result 700 and the deployed update installed, a success.
    Idle,
    /// 6: the agent took the deployment and is working on it.
    DeploymentInProgress,
    /// 255: the deployment failed on the device.
    Failed,
    /// Any other value (legacy agents reported intermediate states).
    Other(i64),
}

impl AgentState {
    /// Maps the numeric state.
    pub fn from_code(code: i64) -> Self {
        match code {
            0 => AgentState::Idle,
            6 => AgentState::DeploymentInProgress,
            255 => AgentState::Failed,
            other => AgentState::Other(other),
        }
    }
}

/// `workflow`: the deployment the agent is working on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Workflow {
    /// 3 = ProcessDeployment, 255 = Cancel.
    pub action: Option<i64>,
    /// Workflow id (the deployment's).
    pub id: Option<String>,
    /// Set when the service asked for a retry.
    pub retry_timestamp: Option<DateTime<Utc>>,
}

/// Result codes of an install, as either agent generation reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstallResult {
    /// `resultCode` (700 = apply success, 0 = failure, -1 = cancelled, 400 = in progress).
    pub result_code: Option<i64>,
    /// Extended result codes, the root result first (one for agent 1.0).
    pub extended_result_codes: Vec<u32>,
    /// Free text from the agent.
    pub result_details: Option<String>,
}

/// A decoded `deviceUpdate.agent` report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentReport {
    /// Reported state, when the report has one (a boot-time report may carry only properties).
    pub state: Option<AgentState>,
    /// The workflow being reported on.
    pub workflow: Option<Workflow>,
    /// The update installed on the device.
    pub installed_update_id: Option<UpdateId>,
    /// The last install's result.
    pub last_install_result: Option<InstallResult>,
    /// Per-step results (`step_0`, `step_1`, …) of multi-step updates.
    pub step_results: BTreeMap<String, InstallResult>,
}

/// Decodes the `deviceUpdate` component of reported properties. `Ok(None)` when it carries
/// no `agent` part (for example only the service acknowledgement).
pub fn decode_device_update(component: &Value) -> Result<Option<AgentReport>, String> {
    let Some(component) = as_object(component) else {
        return Err(format!(
            "deviceUpdate must be an object, found {}",
            kind_of(component)
        ));
    };
    let Some(agent) = get_loose(&component, "agent") else {
        return Ok(None);
    };
    let Some(agent) = as_object(agent) else {
        return Err(format!(
            "deviceUpdate.agent must be an object, found {}",
            kind_of(agent)
        ));
    };
    decode_agent(&agent).map(Some)
}

fn decode_agent(agent: &Map<String, Value>) -> Result<AgentReport, String> {
    let state = present(agent, "state")
        .map(|value| {
            as_i64(value)
                .map(AgentState::from_code)
                .ok_or_else(|| format!("deviceUpdate.agent.state is not an integer: {value}"))
        })
        .transpose()?;
    let workflow = present(agent, "workflow")
        .map(|value| {
            decode_workflow(value).map_err(|e| format!("deviceUpdate.agent.workflow: {e}"))
        })
        .transpose()?;
    let installed_update_id = present(agent, "installedUpdateId")
        .map(|value| {
            decode_update_id(value)
                .map_err(|e| format!("deviceUpdate.agent.installedUpdateId: {e}"))
        })
        .transpose()?;
    let (last_install_result, step_results) = match present(agent, "lastInstallResult") {
        Some(value) => decode_last_install(value)
            .map_err(|e| format!("deviceUpdate.agent.lastInstallResult: {e}"))?,
        None => (None, BTreeMap::new()),
    };
    Ok(AgentReport {
        state,
        workflow,
        installed_update_id,
        last_install_result,
        step_results,
    })
}

fn present<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    get_loose(object, key).filter(|value| !value.is_null())
}

fn decode_workflow(value: &Value) -> Result<Workflow, String> {
    let Some(workflow) = as_object(value) else {
        return Err(format!("must be an object, found {}", kind_of(value)));
    };
    let action = present(&workflow, "action")
        .map(|v| as_i64(v).ok_or_else(|| format!("action is not an integer: {v}")))
        .transpose()?;
    let retry_timestamp = present(&workflow, "retryTimestamp")
        .map(|v| crate::host::json::parse_time(v).map_err(|e| format!("retryTimestamp: {e}")))
        .transpose()?;
    Ok(Workflow {
        action,
        id: present(&workflow, "id").and_then(as_text),
        retry_timestamp,
    })
}

/// Reads an update id from the JSON string the agent writes, or from a plain object.
pub fn decode_update_id(value: &Value) -> Result<UpdateId, String> {
    let object = match unwrap_text(value) {
        Value::Object(object) => object,
        Value::String(text) => {
            return Err(format!(
                "not a JSON update id: `{}`",
                crate::host::json::clip(&text, 80)
            ))
        }
        other => {
            return Err(format!(
                "must be an object or a JSON string, found {}",
                kind_of(&other)
            ))
        }
    };
    let part = |key: &str| present(&object, key).and_then(as_text).unwrap_or_default();
    UpdateId::new(part("provider"), part("name"), part("version")).map_err(|e| e.to_string())
}

type InstallResults = (Option<InstallResult>, BTreeMap<String, InstallResult>);

fn decode_last_install(value: &Value) -> Result<InstallResults, String> {
    let Some(result) = as_object(value) else {
        return Err(format!("must be an object, found {}", kind_of(value)));
    };
    let root = decode_install_result(&result)?;
    let mut steps = BTreeMap::new();
    if let Some(step_map) = present(&result, "stepResults") {
        let Some(step_map) = as_object(step_map) else {
            return Err(format!(
                "stepResults must be an object, found {}",
                kind_of(step_map)
            ));
        };
        for (name, step) in step_map.iter() {
            let Some(step) = as_object(step) else {
                return Err(format!("stepResults.{name} must be an object"));
            };
            let decoded =
                decode_install_result(&step).map_err(|e| format!("stepResults.{name}: {e}"))?;
            steps.insert(name.clone(), decoded);
        }
    }
    Ok((Some(root), steps))
}

fn decode_install_result(result: &Map<String, Value>) -> Result<InstallResult, String> {
    let result_code = present(result, "resultCode")
        .map(|v| as_i64(v).ok_or_else(|| format!("resultCode is not an integer: {v}")))
        .transpose()?;
    let extended_result_codes = if let Some(codes) = present(result, "extendedResultCodes") {
        parse_hex_codes(codes)?
    } else if let Some(code) = present(result, "extendedResultCode") {
        vec![parse_int_code(code)?]
    } else {
        Vec::new()
    };
    Ok(InstallResult {
        result_code,
        extended_result_codes,
        result_details: present(result, "resultDetails").and_then(as_text),
    })
}

/// Agent 1.1: `"00000000,C00D0011"`.
fn parse_hex_codes(value: &Value) -> Result<Vec<u32>, String> {
    let Some(text) = as_text(value) else {
        return Err(format!(
            "extendedResultCodes must be a string, found {}",
            kind_of(value)
        ));
    };
    text.split(',')
        .map(str::trim)
        .filter(|code| !code.is_empty())
        .map(|code| {
            let digits = code.trim_start_matches("0x").trim_start_matches("0X");
            u32::from_str_radix(digits, 16).map_err(|_| {
                format!("extendedResultCodes has a code that is not 32-bit hex: `{code}`")
            })
        })
        .collect()
}

/// Agent 1.0: a C `int`, so codes at or above 0x80000000 arrive negative.
fn parse_int_code(value: &Value) -> Result<u32, String> {
    let code =
        as_i64(value).ok_or_else(|| format!("extendedResultCode is not an integer: {value}"))?;
    if (i64::from(i32::MIN)..=i64::from(u32::MAX)).contains(&code) {
        Ok(code as u32)
    } else {
        Err(format!("extendedResultCode {code} does not fit in 32 bits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_generations_of_extended_codes() {
        assert_eq!(
            parse_hex_codes(&json!("00000000,C00D0011")),
            Ok(vec![0, 0xC00D_0011])
        );
        assert_eq!(parse_int_code(&json!(807403522)), Ok(0x3020_0002));
        assert_eq!(parse_int_code(&json!(-1072889839)), Ok(0xC00D_0011));
        assert!(parse_hex_codes(&json!("zz")).is_err());
        assert!(parse_int_code(&json!(1_i64 << 40)).is_err());
    }

    #[test]
    fn service_ack_alone_is_not_an_agent_report() {
        let ack = json!({"__t": "c", "service": {"ac": 200}});
        assert_eq!(decode_device_update(&ack), Ok(None));
    }

    #[test]
    fn a_wrongly_typed_state_is_named() {
        let report = json!({"agent": {"state": "idle"}});
        let error = decode_device_update(&report).expect_err("bad state");
        assert!(error.contains("deviceUpdate.agent.state"), "{error}");
    }

    #[test]
    fn update_id_as_string_or_object() {
        let expected = UpdateId::new("Contoso", "Gateway", "2.4.1").expect("valid");
        let as_string =
            json!("{\"provider\":\"Contoso\",\"name\":\"Gateway\",\"version\":\"2.4.1\"}");
        assert_eq!(decode_update_id(&as_string), Ok(expected.clone()));
        let as_object = json!({"Provider": "Contoso", "Name": "Gateway", "Version": "2.4.1"});
        assert_eq!(decode_update_id(&as_object), Ok(expected));
        assert!(decode_update_id(&json!("Contoso/Gateway")).is_err());
    }
}
