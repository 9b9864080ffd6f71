//! `/api/compliance`: hosts and devices against the update they should run, per group, and
//! down to each device (paged with `nextLink`) and each host.

use super::authorized::{Authorized, Read};
use super::extract::ApiQuery;
use super::views::{
    ComplianceView, DeviceCompliance, DeviceComplianceList, DeviceStatus, HostCompliance,
    HostComplianceList, RolloutCompliance,
};
use crate::problem::Problem;
use crate::service::{RolloutService, ServiceError};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rollout_core::Rollout;
use serde::Deserialize;

/// Devices listed per page unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 100;
/// Most devices one page lists.
const MAX_LIMIT: usize = 1000;
/// Device records read per store call while filtering.
const SCAN_PAGE: usize = 500;

/// Filters of the per-device list; every one optional.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceQuery {
    /// Only this rollout's devices (otherwise those of the rollouts `GET /api/compliance` shows).
    rollout: Option<String>,
    /// Only this device group.
    group: Option<String>,
    /// Only devices in this status.
    status: Option<DeviceStatus>,
    /// Devices per page, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Where the previous page ended (from its `nextLink`).
    after: Option<String>,
}

/// Filter of the per-host list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HostQuery {
    /// Only this rollout's hosts.
    rollout: Option<String>,
}

fn respond<T: IntoResponse>(result: Result<T, Problem>) -> Response {
    result.map_or_else(IntoResponse::into_response, IntoResponse::into_response)
}

/// The rollouts compliance speaks for: every active one, and the latest of each group.
async fn current_rollouts(service: &RolloutService) -> Result<Vec<Rollout>, ServiceError> {
    let mut seen_groups = std::collections::BTreeSet::new();
    let mut current = Vec::new();
    // newest first: a group's latest rollout speaks for it
    for rollout in service.list(None).await? {
        let groups: Vec<String> = rollout
            .plan()
            .device_groups()
            .map(|g| g.to_ascii_lowercase())
            .collect();
        if groups.iter().all(|g| seen_groups.contains(g)) && rollout.state().is_terminal() {
            continue;
        }
        seen_groups.extend(groups);
        current.push(rollout);
    }
    Ok(current)
}

/// The rollouts a query names: one (404 if unknown) or the current ones.
async fn chosen_rollouts(
    service: &RolloutService,
    rollout: Option<&str>,
) -> Result<Vec<Rollout>, Problem> {
    Ok(match rollout {
        Some(id) => vec![service.get(id).await?],
        None => current_rollouts(service).await?,
    })
}

/// Hosts and devices side by side: on the target update, behind, failed or timed out.
#[utoipa::path(get, path = "/api/compliance", tag = "compliance",
    responses((status = 200, body = ComplianceView), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn summary(Authorized { service, .. }: Authorized<Read>) -> Response {
    let result = async {
        let rollouts = current_rollouts(&service).await?;
        Ok::<_, Problem>(ComplianceView {
            rollouts: rollouts.iter().map(RolloutCompliance::of).collect(),
        })
    }
    .await;
    respond(result.map(Json))
}

/// Each device against the update it should run, paged: follow `nextLink` while present.
#[utoipa::path(get, path = "/api/compliance/devices", tag = "compliance", params(DeviceQuery),
    responses((status = 200, body = DeviceComplianceList), (status = 400, description = "a filter or limit that does not parse", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such rollout", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn devices(Authorized { service, .. }: Authorized<Read>, query: ApiQuery) -> Response {
    let result = async {
        let filter: DeviceQuery = query.parse()?;
        let limit = filter.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(Problem::new(StatusCode::BAD_REQUEST, "Invalid query")
                .detail(format!("limit must be 1 to {MAX_LIMIT} (got {limit})")));
        }
        let rollouts = chosen_rollouts(&service, filter.rollout.as_deref()).await?;
        let after = filter.after.as_deref().map(Cursor::parse).transpose()?;
        let (value, next) = page(&service, &rollouts, &filter, after, limit).await?;
        let next_link = next.map(|cursor| next_link(&filter, limit, &cursor));
        Ok::<_, Problem>(DeviceComplianceList { value, next_link })
    }
    .await;
    respond(result.map(Json))
}

/// Every maintenance run and machine of the rollouts with its result.
#[utoipa::path(get, path = "/api/compliance/hosts", tag = "compliance", params(HostQuery),
    responses((status = 200, body = HostComplianceList), (status = 404, description = "no such rollout", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn hosts(Authorized { service, .. }: Authorized<Read>, query: ApiQuery) -> Response {
    let result = async {
        let filter: HostQuery = query.parse()?;
        let rollouts = chosen_rollouts(&service, filter.rollout.as_deref()).await?;
        let value = rollouts.iter().flat_map(HostCompliance::of).collect();
        Ok::<_, Problem>(HostComplianceList { value })
    }
    .await;
    respond(result.map(Json))
}

/// Where a page ended: a rollout and the last device listed from it.
struct Cursor {
    rollout: String,
    device: String,
}

impl Cursor {
    /// `after` is `ROLLOUT/DEVICE` (rollout ids hold no `/`).
    fn parse(text: &str) -> Result<Self, Problem> {
        let (rollout, device) = text.split_once('/').ok_or_else(|| {
            Problem::new(StatusCode::BAD_REQUEST, "Invalid query")
                .detail("after must be the value a nextLink carries (ROLLOUT/DEVICE)")
        })?;
        Ok(Cursor {
            rollout: rollout.into(),
            device: device.into(),
        })
    }
}

/// Up to `limit` matching devices after `after`, and the cursor of the next page when
/// more remain (one more match is looked for, so a last full page has no `nextLink`).
async fn page(
    service: &RolloutService,
    rollouts: &[Rollout],
    filter: &DeviceQuery,
    after: Option<Cursor>,
    limit: usize,
) -> Result<(Vec<DeviceCompliance>, Option<Cursor>), Problem> {
    let start = start_of(rollouts, after.as_ref())?;
    let mut found: Vec<(String, DeviceCompliance)> = Vec::with_capacity(limit + 1);
    for (position, rollout) in rollouts.iter().enumerate().skip(start) {
        let mut from = after
            .as_ref()
            .filter(|_| position == start)
            .map(|cursor| cursor.device.clone());
        loop {
            let records = service
                .store()
                .list_devices(rollout.id().as_str(), from.as_deref(), SCAN_PAGE)
                .await
                .map_err(ServiceError::from)?;
            let full = records.len() == SCAN_PAGE;
            from = records.last().map(|(device, _)| device.clone());
            for (device, record) in records {
                let row = DeviceCompliance::of(rollout, &device, &record);
                if matches(filter, &row) {
                    found.push((rollout.id().to_string(), row));
                    if found.len() > limit {
                        found.pop();
                        let cursor = cursor_after(&found);
                        return Ok((
                            found.into_iter().map(|(_, row)| row).collect(),
                            Some(cursor),
                        ));
                    }
                }
            }
            if !full {
                break;
            }
        }
    }
    Ok((found.into_iter().map(|(_, row)| row).collect(), None))
}

/// Where in `rollouts` a page after `after` starts (`400` if the cursor's rollout is not
/// among them).
fn start_of(rollouts: &[Rollout], after: Option<&Cursor>) -> Result<usize, Problem> {
    let Some(cursor) = after else {
        return Ok(0);
    };
    rollouts
        .iter()
        .position(|r| r.id() == &cursor.rollout)
        .ok_or_else(|| {
            Problem::new(StatusCode::BAD_REQUEST, "Invalid query").detail(format!(
                "after names rollout {}, which this listing does not hold",
                cursor.rollout
            ))
        })
}

/// The cursor after the last row of a page.
fn cursor_after(found: &[(String, DeviceCompliance)]) -> Cursor {
    let (rollout, device) = found
        .last()
        .map(|(r, d)| (r.clone(), d.device_id.clone()))
        .unwrap_or_default();
    Cursor { rollout, device }
}

fn matches(filter: &DeviceQuery, row: &DeviceCompliance) -> bool {
    filter
        .group
        .as_deref()
        .is_none_or(|group| group.eq_ignore_ascii_case(&row.group))
        && filter.status.is_none_or(|status| status == row.status)
}

/// The next page's path: the same filters, `after` the cursor.
fn next_link(filter: &DeviceQuery, limit: usize, cursor: &Cursor) -> String {
    let encode = |value: &str| {
        percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let mut pairs = Vec::new();
    if let Some(rollout) = &filter.rollout {
        pairs.push(format!("rollout={}", encode(rollout)));
    }
    if let Some(group) = &filter.group {
        pairs.push(format!("group={}", encode(group)));
    }
    if let Some(status) = filter.status {
        pairs.push(format!("status={}", status.as_str()));
    }
    pairs.push(format!("limit={limit}"));
    let after = format!("{}/{}", cursor.rollout, cursor.device);
    pairs.push(format!("after={}", encode(&after)));
    format!("/api/compliance/devices?{}", pairs.join("&"))
}
