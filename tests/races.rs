//! Races against a real `envform serve`: concurrent updates of one environment lose nothing, and
//! concurrent claims of one name admit exactly one.

use serde_json::{Value, json};

use crate::support::{KEY_A, Server};

async fn create(client: &reqwest::Client, server: &Server, name: &str) -> reqwest::Response {
    client
        .post(format!("{}/api/v1/environments", server.url))
        .bearer_auth(KEY_A)
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap()
}

/// Sends every request at once; their statuses, sorted.
async fn sent_together(requests: Vec<reqwest::RequestBuilder>) -> Vec<u16> {
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|request| tokio::spawn(async move { request.send().await.unwrap().status().as_u16() }))
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses.sort_unstable();
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_of_different_fields_all_persist() {
    envform::api::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("serve.db"), &[]);
    let client = reqwest::Client::new();
    let created: Value = create(&client, &server, "shared")
        .await
        .json()
        .await
        .unwrap();
    let url = format!(
        "{}/api/v1/environments/{}",
        server.url,
        created["id"].as_str().unwrap()
    );
    let patches = [
        json!({"description": "from writer 1"}),
        json!({"display_name": "Shared"}),
        json!({"tags": ["writer-3"]}),
        json!({"metadata": {"writer": 4}}),
        json!({"settings": {"writer": 5}}),
        json!({"configuration": {"max_workers": 6}}),
        json!({"execution_environment": {"secrets": ["writer-7"]}}),
        json!({"status": "inactive"}),
    ];
    for round in 0..5 {
        let tasks: Vec<_> = patches
            .iter()
            .cloned()
            .map(|patch| {
                let client = client.clone();
                let url = url.clone();
                tokio::spawn(async move {
                    client
                        .patch(url)
                        .bearer_auth(KEY_A)
                        .json(&patch)
                        .send()
                        .await
                        .unwrap()
                        .status()
                })
            })
            .collect();
        for task in tasks {
            assert!(task.await.unwrap().is_success(), "round {round}");
        }
        let environment: Value = client
            .get(&url)
            .bearer_auth(KEY_A)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for patch in &patches {
            let (field, value) = patch.as_object().unwrap().iter().next().unwrap();
            assert_eq!(
                &environment[field], value,
                "round {round}: `{field}` was lost"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_of_one_name_admit_exactly_one() {
    envform::api::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("serve.db"), &[]);
    let client = reqwest::Client::new();

    // Eight creates of one name.
    let creates = (0..8)
        .map(|_| {
            client
                .post(format!("{}/api/v1/environments", server.url))
                .bearer_auth(KEY_A)
                .json(&json!({"name": "contested"}))
        })
        .collect();
    let statuses = sent_together(creates).await;
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409, 409, 409]);

    // Eight environments renamed onto one free name at once.
    let mut ids = Vec::new();
    for index in 0..8 {
        let created: Value = create(&client, &server, &format!("renamer-{index}"))
            .await
            .json()
            .await
            .unwrap();
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    let renames = ids
        .into_iter()
        .map(|id| {
            client
                .patch(format!("{}/api/v1/environments/{id}", server.url))
                .bearer_auth(KEY_A)
                .json(&json!({"name": "the-one"}))
        })
        .collect();
    let statuses = sent_together(renames).await;
    assert_eq!(statuses, [200, 409, 409, 409, 409, 409, 409, 409]);
    let list: Value = client
        .get(format!("{}/api/v1/environments", server.url))
        .bearer_auth(KEY_A)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let named: usize = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|env| env["name"] == "the-one" || env["name"] == "contested")
        .count();
    assert_eq!(named, 2);
}
