//! Device Update routes: official shapes, idempotent creation, limits, cancel/retry, paging.

use crate::support::*;
use patchwave_standin::{DevicePhase, GroupConfig};
use serde_json::{json, Value};
use std::collections::BTreeMap;

const API: &str = "api-version=2022-10-01";

fn deployment_request(id: &str, group: &str) -> Value {
    let mut body = example("adu-create-deployment-request.json");
    body["deploymentId"] = json!(id);
    body["groupId"] = json!(group);
    body
}

#[tokio::test]
async fn deployment_routes_answer_with_the_official_shapes() {
    let mut group = GroupConfig::numbered("canary", 6, 0.0);
    group.device_classes = 2;
    let standin = start(fast_config(vec![group])).await;
    let http = client();
    let base = format!(
        "{}/deviceUpdate/blue/management/groups/canary",
        standin.url()
    );
    let deployment = format!("{base}/deployments/dep1");

    let created = http
        .put(format!("{deployment}?{API}"))
        .bearer_auth("token-is-ignored")
        .json(&deployment_request("dep1", "canary"))
        .send()
        .await
        .expect("put");
    assert_eq!(created.status(), 200);
    let created: Value = created.json().await.expect("json");
    let checked = assert_shape(
        &example("adu-create-deployment-response.json"),
        &created,
        "",
    );
    assert!(checked > 10, "{checked}");
    assert_eq!(
        created["deviceClassSubgroups"].as_array().map(Vec::len),
        Some(2)
    );

    // The same PUT again creates nothing new.
    let again = http
        .put(format!("{deployment}?{API}"))
        .json(&deployment_request("dep1", "canary"))
        .send()
        .await
        .expect("put again");
    assert_eq!(again.status(), 200);
    let deployments = standin.world().deployments();
    assert_eq!(deployments.len(), 1);
    assert_eq!(deployments[0].puts, 2);

    let got: Value = http
        .get(format!("{deployment}?{API}"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_shape(&example("adu-get-deployment-response.json"), &got, "");

    let status: Value = http
        .get(format!("{deployment}/status?{API}"))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert_shape(&example("adu-deployment-status-response.json"), &status, "");
    let total: u64 = status["subgroupStatus"]
        .as_array()
        .expect("subgroups")
        .iter()
        .map(|s| s["totalDevices"].as_u64().expect("count"))
        .sum();
    assert_eq!(total, 6);

    let subgroups: Value = http
        .get(format!("{base}/deviceClassSubgroups?{API}"))
        .send()
        .await
        .expect("subgroups")
        .json()
        .await
        .expect("json");
    assert_shape(
        &example("adu-list-device-class-subgroups-response.json"),
        &subgroups,
        "",
    );
    let class = subgroups["value"][0]["deviceClassId"]
        .as_str()
        .expect("class")
        .to_string();
    assert_eq!(subgroups["value"][0]["deploymentId"], "dep1");

    let subgroup_status: Value = http
        .get(format!(
            "{base}/deviceClassSubgroups/{class}/deployments/dep1/status?{API}"
        ))
        .send()
        .await
        .expect("subgroup status")
        .json()
        .await
        .expect("json");
    assert_shape(
        &example("adu-subgroup-deployment-status-response.json"),
        &subgroup_status,
        "",
    );

    let cancel = http
        .post(format!(
            "{base}/deviceClassSubgroups/{class}/deployments/dep1:cancel?{API}"
        ))
        .send()
        .await
        .expect("cancel");
    assert_eq!(cancel.status(), 200);
    let cancel: Value = cancel.json().await.expect("json");
    assert_shape(&example("adu-cancel-deployment-response.json"), &cancel, "");
    assert_eq!(cancel["isCanceled"], true);
    assert!(standin.world().deployments()[0]
        .canceled_classes
        .contains(&class));

    let retry = http
        .post(format!(
            "{base}/deviceClassSubgroups/{class}/deployments/dep1:retry?{API}"
        ))
        .send()
        .await
        .expect("retry");
    assert_eq!(retry.status(), 200);
    let retry: Value = retry.json().await.expect("json");
    assert_shape(&example("adu-retry-deployment-response.json"), &retry, "");
    assert_eq!(retry["isRetried"], true);

    let deleted = http
        .delete(format!("{deployment}?{API}"))
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 204);
    let gone = http
        .get(format!("{deployment}?{API}"))
        .send()
        .await
        .expect("get deleted");
    assert_eq!(gone.status(), 404);
    assert!(standin.world().deployments()[0].deleted);

    // Every route insists on its api-version.
    for request in [
        http.put(format!("{deployment}?api-version=2021-06-01-preview"))
            .json(&deployment_request("dep1", "canary")),
        http.get(deployment.clone()),
        http.delete(format!("{deployment}?api-version=2022-10-02")),
        http.get(format!("{deployment}/status")),
        http.get(format!("{base}/deviceClassSubgroups?api-version=x")),
        http.post(format!(
            "{base}/deviceClassSubgroups/{class}/deployments/dep1:cancel"
        )),
        http.post(format!(
            "{base}/deviceClassSubgroups/{class}/deployments/dep1:retry?api-version=1"
        )),
        http.get(format!(
            "{}/deviceUpdate/blue/management/devices?filter=groupId eq 'canary'",
            standin.url()
        )),
    ] {
        assert_invalid_api_version(request.send().await.expect("send")).await;
    }
}

#[tokio::test]
async fn deployments_are_validated_and_limited() {
    let mut config = fast_config(vec![GroupConfig::numbered("g", 2, 0.0)]);
    config.max_deployments = 3;
    let standin = start(config).await;
    let http = client();
    let put = |id: &str, body: Value| {
        http.put(format!(
            "{}/deviceUpdate/blue/management/groups/g/deployments/{id}?{API}",
            standin.url()
        ))
        .json(&body)
        .send()
    };
    for id in ["d1", "d2", "d3"] {
        assert_eq!(
            put(id, deployment_request(id, "g"))
                .await
                .expect("put")
                .status(),
            200
        );
    }
    // past the limit Device Update accepts the deployment, then reports it failed
    let accepted = put("d4", deployment_request("d4", "g")).await.expect("put");
    assert_eq!(accepted.status(), 200);
    let status: Value = http
        .get(format!(
            "{}/deviceUpdate/blue/management/groups/g/deployments/d4/status?{API}",
            standin.url()
        ))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert_eq!(status["deploymentState"], "Failed", "{status}");
    for subgroup in status["subgroupStatus"].as_array().expect("subgroups") {
        assert_eq!(subgroup["deploymentState"], "Failed", "{subgroup}");
        assert_eq!(subgroup["error"]["code"], "ADMConfigurationLimitExceeded");
    }

    let mut other_update = deployment_request("d1", "g");
    other_update["update"]["updateId"]["version"] = json!("9.9.9");
    assert_eq!(put("d1", other_update).await.expect("put").status(), 409);

    let mut bad_policy = deployment_request("d5", "g");
    bad_policy["rollbackPolicy"]["failure"] = json!({"devicesFailedPercentage": 5});
    assert_eq!(put("d5", bad_policy).await.expect("put").status(), 400);
    assert_eq!(
        put("Upper", deployment_request("Upper", "g"))
            .await
            .expect("put")
            .status(),
        400
    );
    assert_eq!(
        put("d6", deployment_request("d6", "other"))
            .await
            .expect("put")
            .status(),
        400
    );

    // Deleting one frees a slot.
    let deleted = http
        .delete(format!(
            "{}/deviceUpdate/blue/management/groups/g/deployments/d1?{API}",
            standin.url()
        ))
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        put("d4", deployment_request("d4", "g"))
            .await
            .expect("put")
            .status(),
        200
    );
    let live: Vec<_> = standin
        .world()
        .deployments()
        .into_iter()
        .filter(|d| !d.deleted)
        .map(|d| (d.id, d.superseded))
        .collect();
    assert_eq!(
        live,
        vec![
            ("d2".into(), true),
            ("d3".into(), true),
            ("d4".into(), false)
        ]
    );
}

#[tokio::test]
async fn status_counts_follow_the_devices_and_the_device_list_pages() {
    let standin = start(fast_config(vec![
        GroupConfig::numbered("fleet", 250, 0.1),
        GroupConfig::numbered("other", 3, 0.0),
    ]))
    .await;
    let http = client();
    let world = standin.world();
    let base = format!(
        "{}/deviceUpdate/blue/management/groups/fleet",
        standin.url()
    );
    deploy_and_finish(&http, &world, &base, "fleet").await;
    let status: Value = http
        .get(format!(
            "{}/deviceUpdate/blue/management/groups/fleet/deployments/wave1/status?{API}",
            standin.url()
        ))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    let sub = &status["subgroupStatus"][0];
    assert_eq!(sub["totalDevices"], 250);
    assert_eq!(sub["devicesCompletedFailedCount"], 25);
    assert_eq!(sub["devicesCompletedSucceededCount"], 225);
    assert_eq!(sub["devicesInProgressCount"], 0);
    assert_eq!(status["deploymentState"], "Active");

    let mut url = format!(
        "{}/deviceUpdate/blue/management/devices?filter=groupId%20eq%20'fleet'&{API}",
        standin.url()
    );
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page: Value = http
            .get(&url)
            .send()
            .await
            .expect("devices")
            .json()
            .await
            .expect("json");
        pages += 1;
        for device in page["value"].as_array().expect("value") {
            for key in [
                "deviceId",
                "deviceClassId",
                "groupId",
                "deploymentStatus",
                "installedUpdate",
                "onLatestUpdate",
                "lastDeploymentId",
            ] {
                assert!(device.get(key).is_some(), "{key} in {device}");
            }
            assert_eq!(device["groupId"], "fleet");
            assert_eq!(device["lastDeploymentId"], "wave1");
            seen.push(device["deviceId"].as_str().expect("id").to_string());
        }
        match page["nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 250);
    let failed = world
        .devices()
        .into_iter()
        .filter(|d| d.status == Some(DevicePhase::Failed))
        .count();
    assert_eq!(failed, 25);

    let bad = http
        .get(format!(
            "{}/deviceUpdate/blue/management/devices?filter=name gt 'x'&{API}",
            standin.url()
        ))
        .send()
        .await
        .expect("bad filter");
    assert_eq!(bad.status(), 400);
}

/// Reads a device-state list through its `nextLink`s: every item and the number of pages.
async fn all_device_states(http: &reqwest::Client, first: String) -> (Vec<Value>, usize) {
    let (mut url, mut items, mut pages) = (first, Vec::new(), 0);
    loop {
        let response = http.get(&url).send().await.expect("device states");
        assert_eq!(response.status(), 200, "{url}");
        let page: Value = response.json().await.expect("json");
        pages += 1;
        items.extend(page["value"].as_array().expect("value").iter().cloned());
        match page["nextLink"].as_str() {
            Some(next) => {
                assert!(next.contains("skipToken="), "{next}");
                url = next.to_string();
            }
            None => return (items, pages),
        }
    }
}

/// `(deviceId, deviceState)` of each item.
/// Deploys `wave1` to `group` (under `base`) and waits until every device finished it.
async fn deploy_and_finish(
    http: &reqwest::Client,
    world: &patchwave_standin::World,
    base: &str,
    group: &str,
) {
    let created = http
        .put(format!("{base}/deployments/wave1?{API}"))
        .json(&deployment_request("wave1", group))
        .send()
        .await
        .expect("put");
    assert_eq!(created.status(), 200);
    deployment_finishes(world, 0).await;
}

fn id_and_state(items: &[Value]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|i| {
            let text = |key: &str| i[key].as_str().expect("text").to_string();
            (text("deviceId"), text("deviceState"))
        })
        .collect()
}

#[tokio::test]
async fn device_states_list_filter_and_page_each_subgroup_deployment() {
    let mut group = GroupConfig::numbered("small", 12, 0.25);
    group.device_classes = 2;
    let mut config = fast_config(vec![group]);
    config.page_size = 4;
    let standin = start(config).await;
    let (http, world) = (client(), standin.world());
    let base = format!(
        "{}/deviceUpdate/blue/management/groups/small",
        standin.url()
    );
    deploy_and_finish(&http, &world, &base, "small").await;
    let deployment = world.deployments()[0].clone();
    assert_eq!(deployment.count(DevicePhase::Failed), 3);
    let classes: BTreeMap<String, String> = world
        .devices()
        .into_iter()
        .map(|d| (d.id, d.device_class))
        .collect();
    let mut class_ids: Vec<String> = classes.values().cloned().collect();
    class_ids.sort();
    class_ids.dedup();
    assert_eq!(class_ids.len(), 2);
    let states =
        |class: &str| format!("{base}/deviceClassSubgroups/{class}/deployments/wave1/devicestates");
    let mut failed_seen = 0;
    for class in &class_ids {
        let expected: Vec<(String, String)> = deployment
            .devices
            .iter()
            .filter(|(device, _)| &classes[*device] == class)
            .map(|(device, phase)| (device.clone(), phase.service_name().to_string()))
            .collect();
        assert_eq!(expected.len(), 6);

        let (items, pages) = all_device_states(&http, format!("{}?{API}", states(class))).await;
        assert_eq!(pages, 2, "6 devices in pages of 4");
        assert_eq!(
            id_and_state(&items),
            expected,
            "exactly the class's devices"
        );
        assert_shape(
            &example("adu-list-deployment-device-states-response.json"),
            &json!({ "value": items }),
            "",
        );
        assert!(items
            .iter()
            .all(|i| i["retryCount"] == 0 && i["movedOnToNewDeployment"] == false));

        for state in ["Failed", "Succeeded"] {
            let url = format!("{}?filter=deviceState eq '{state}'&{API}", states(class));
            let (items, _) = all_device_states(&http, url).await;
            let wanted: Vec<_> = expected
                .iter()
                .filter(|(_, s)| s == state)
                .cloned()
                .collect();
            assert_eq!(id_and_state(&items), wanted, "{state} in {class}");
            if state == "Failed" {
                failed_seen += items.len();
            }
        }
        let (device, state) = &expected[0];
        let url = format!(
            "{}?filter=deviceId eq '{device}' and deviceState eq '{state}'&{API}",
            states(class)
        );
        let (items, pages) = all_device_states(&http, url).await;
        assert_eq!(
            (id_and_state(&items), pages),
            (vec![expected[0].clone()], 1)
        );
    }
    assert_eq!(failed_seen, 3);

    let class = &class_ids[0];
    let bad = http
        .get(format!("{}?filter=groupId eq 'small'&{API}", states(class)))
        .send()
        .await
        .expect("bad filter");
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.expect("json");
    assert_eq!(body["error"]["code"], "InvalidFilter", "{body}");
    for (url, code) in [
        (
            format!("{base}/deviceClassSubgroups/{class}/deployments/nope/devicestates?{API}"),
            "DeploymentNotFound",
        ),
        (
            format!("{base}/deviceClassSubgroups/unknown/deployments/wave1/devicestates?{API}"),
            "DeviceClassSubgroupNotFound",
        ),
    ] {
        let missing = http.get(&url).send().await.expect("missing");
        assert_eq!(missing.status(), 404, "{url}");
        let body: Value = missing.json().await.expect("json");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    assert_invalid_api_version(http.get(states(class)).send().await.expect("send")).await;

    // A newer deployment on the group: the devices of the old one have moved on.
    let newer = http
        .put(format!("{base}/deployments/wave2?{API}"))
        .json(&deployment_request("wave2", "small"))
        .send()
        .await
        .expect("put");
    assert_eq!(newer.status(), 200);
    let (items, _) = all_device_states(&http, format!("{}?{API}", states(class))).await;
    assert_eq!(items.len(), 6);
    assert!(items.iter().all(|i| i["movedOnToNewDeployment"] == true));
}
