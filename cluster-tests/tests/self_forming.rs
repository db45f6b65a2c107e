//! Real processes on 127.0.1.x form one cluster from a single seed: three
//! queriers and a two-member STORE group. `kill -9` of a store shows in every
//! querier's view within the failure-detector bound; a store that joins
//! late, through another seed, is used by every querier.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use skein_cluster_tests::{get_json, http_get, start_node, wait_for, Process};

fn querier(ip: &str, seed: Option<&str>) -> Process {
    start_node(
        &format!("query-{ip}"),
        "query",
        ip,
        seed,
        &[
            "--store.health-check-interval",
            "500ms",
            "--store.unhealthy-timeout",
            "5s",
        ],
    )
    .unwrap()
}

fn store(ip: &str, seed: &str) -> Process {
    start_node(
        &format!("store-{ip}"),
        "synthetic",
        ip,
        Some(seed),
        &[
            "--peer-type",
            "store",
            "--store-group-id",
            "bucket-1",
            "--label",
            "region=eu",
            "--targets",
            "2",
        ],
    )
    .unwrap()
}

fn store_group(http: SocketAddr) -> Option<Vec<(String, String)>> {
    let v = get_json(http, "/api/v1/cluster").ok()?;
    let groups = v["data"]["groups"].as_array()?;
    let g = groups.iter().find(|g| g["storeGroupId"] == "bucket-1")?;
    Some(
        g["members"]
            .as_array()?
            .iter()
            .map(|m| {
                (
                    m["endpoint"].as_str().unwrap_or("").to_string(),
                    m["health"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect(),
    )
}

#[test]
fn queriers_and_stores_form_one_cluster_from_one_seed() {
    let seed = "127.0.1.1:10900";
    let q1 = querier("127.0.1.1", None);
    let q2 = querier("127.0.1.2", Some(seed));
    let q3 = querier("127.0.1.3", Some(seed));
    let s1 = store("127.0.1.11", seed);
    let mut s2 = store("127.0.1.12", seed);
    let queriers = [&q1, &q2, &q3];

    for q in queriers {
        wait_for(
            "both stores healthy in one group",
            Duration::from_secs(20),
            || {
                store_group(q.http)
                    .is_some_and(|m| m.len() == 2 && m.iter().all(|(_, h)| h == "healthy"))
            },
        )
        .unwrap();
        wait_for("five ready members", Duration::from_secs(20), || {
            get_json(q.http, "/api/v1/cluster").is_ok_and(|v| {
                v["data"]["members"].as_array().is_some_and(|m| {
                    m.len() == 5 && m.iter().all(|m| m["ready"] == Value::Bool(true))
                })
            })
        })
        .unwrap();
        let (status, _) = http_get(q.http, "/-/ready").unwrap();
        assert_eq!(status, 200);
        let stores = get_json(q.http, "/api/v1/stores").unwrap();
        let listed = stores["data"]["synthetic"]
            .as_array()
            .or(stores["data"]["store"].as_array());
        assert_eq!(listed.map(Vec::len), Some(2), "{stores}");
    }
    let members = store_group(q2.http).unwrap();
    let endpoints: Vec<&str> = members.iter().map(|(e, _)| e.as_str()).collect();
    assert!(endpoints.contains(&s1.grpc.to_string().as_str()));

    // A crash: every querier sees the store fail at once, keeps it in its
    // group as failed (it died without leaving) and, after
    // --store.unhealthy-timeout, drops it.
    let dead = s2.grpc.to_string();
    s2.kill();
    for q in queriers {
        let took = wait_for(
            "the killed store marked failed",
            Duration::from_secs(20),
            || {
                store_group(q.http).is_some_and(|m| {
                    m.iter().any(|(e, h)| *e == dead && h != "healthy")
                        && m.iter().any(|(e, h)| *e != dead && h == "healthy")
                })
            },
        )
        .unwrap();
        eprintln!("{}: killed store failed after {took:?}", q.name());
        assert!(took < Duration::from_secs(10), "detection took {took:?}");
    }
    for q in queriers {
        let took = wait_for(
            "the killed store to leave the group",
            Duration::from_secs(30),
            || {
                store_group(q.http)
                    .is_some_and(|m| m.len() == 1 && m.iter().all(|(e, _)| *e != dead))
            },
        )
        .unwrap();
        eprintln!("{}: killed store gone after {took:?} more", q.name());
    }

    // A late joiner, seeded through another querier: every querier adds it
    // to the group, and once the last original member is gone it alone
    // answers every querier's queries.
    let late = store("127.0.1.13", "127.0.1.2:10900");
    let joined = late.grpc.to_string();
    for q in queriers {
        wait_for(
            "the late store in the group",
            Duration::from_secs(20),
            || {
                store_group(q.http).is_some_and(|m| {
                    m.len() == 2 && m.iter().any(|(e, h)| *e == joined && h == "healthy")
                })
            },
        )
        .unwrap();
    }
    drop(s1);
    let path = "/api/v1/query?query=count(http_requests_total)";
    for q in queriers {
        wait_for(
            "answers from the late store alone",
            Duration::from_secs(20),
            || {
                get_json(q.http, path).is_ok_and(|v| {
                    v["status"] == "success"
                        && v["warnings"].is_null()
                        && v["data"]["result"][0]["value"][1] == "4"
                        && store_group(q.http).is_some_and(|m| m.len() == 1)
                })
            },
        )
        .unwrap();
    }
}
