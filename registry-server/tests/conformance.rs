//! Our own conformance module, category by category after the OCI distribution-spec
//! conformance suite (pull, push, content discovery, content management, error codes):
//! the same checks on status codes and headers, written here from the facts it tests.

mod common;

use common::{TestRegistry, assert_error};
use rbuild_image::{Algorithm, Digest, media_type as mt};
use reqwest::StatusCode;
use serde_json::json;

const NAME: &str = "conformance/repo";
const CROSS: &str = "conformance/crossmount";
const EMPTY_JSON: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

fn loc(r: &reqwest::Response) -> String {
    r.headers().get("location").expect("Location header").to_str().unwrap().to_string()
}

async fn post_put(reg: &TestRegistry, name: &str, data: &[u8]) -> Digest {
    let d = Digest::sha256_of(data);
    let r = reg.client.post(reg.url(&format!("/v2/{name}/blobs/uploads/"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = reg
        .client
        .put(reg.url(&format!("{}?digest={d}", loc(&r))))
        .header("Content-Type", "application/octet-stream")
        .header("Content-Length", data.len().to_string())
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(!loc(&r).is_empty());
    d
}

fn manifest(config: &Digest, config_len: usize, layers: &[(&Digest, usize)], extra: serde_json::Value) -> Vec<u8> {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": mt::OCI_MANIFEST,
        "config": {"mediaType": mt::OCI_CONFIG, "digest": config, "size": config_len},
        "layers": layers.iter().map(|(d, n)| json!({"mediaType": mt::OCI_LAYER_GZIP, "digest": d, "size": n})).collect::<Vec<_>>(),
    });
    if let (Some(o), Some(e)) = (m.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    serde_json::to_vec_pretty(&m).unwrap()
}

async fn put_manifest(reg: &TestRegistry, name: &str, reference: &str, ct: &str, body: &[u8]) -> reqwest::Response {
    reg.client
        .put(reg.url(&format!("/v2/{name}/manifests/{reference}")))
        .header("Content-Type", ct)
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn pull() {
    let reg = TestRegistry::start().await;
    let c = &reg.client;
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let cd = post_put(&reg, NAME, config).await;
    let layer = b"a layer of bytes";
    let ld = post_put(&reg, NAME, layer).await;
    let m = manifest(&cd, config.len(), &[(&ld, layer.len())], json!({}));
    let md = Digest::sha256_of(&m);
    assert_eq!(put_manifest(&reg, NAME, "tagtest0", mt::OCI_MANIFEST, &m).await.status(), 201);

    // /v2/ base route.
    let r = c.get(reg.url("/v2/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["docker-distribution-api-version"], "registry/2.0");
    // Blobs.
    let r = c.head(reg.url(&format!("/v2/{NAME}/blobs/{}", Digest::sha256_of(b"nope")))).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = c.head(reg.url(&format!("/v2/{NAME}/blobs/{ld}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], layer.len().to_string());
    assert_eq!(r.headers()["docker-content-digest"], ld.to_string());
    let r = c.get(reg.url(&format!("/v2/{NAME}/blobs/{ld}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(&r.bytes().await.unwrap()[..], layer);
    // Manifests by tag and digest, GET and HEAD.
    for reference in ["tagtest0".to_string(), md.to_string()] {
        let r = c.head(reg.url(&format!("/v2/{NAME}/manifests/{reference}"))).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["docker-content-digest"], md.to_string());
        assert_eq!(r.headers()["content-length"], m.len().to_string());
        let r = c
            .get(reg.url(&format!("/v2/{NAME}/manifests/{reference}")))
            .header("Accept", mt::OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], mt::OCI_MANIFEST);
        assert_eq!(&r.bytes().await.unwrap()[..], &m[..]);
    }
    let r = c.head(reg.url(&format!("/v2/{NAME}/manifests/nonexistent"))).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = c.get(reg.url(&format!("/v2/{NAME}/manifests/nonexistent"))).send().await.unwrap();
    assert_error(r, 404, "MANIFEST_UNKNOWN").await;
    // Error codes: an invalid manifest PUT to a malformed digest gets an OCI JSON body.
    let r = put_manifest(&reg, NAME, "sha256:totallywrong", mt::OCI_MANIFEST, b"{\"invalid\": true}").await;
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    let code = body["errors"][0]["code"].as_str().unwrap();
    assert!(rbuild_image::distribution::ErrorCode::from_code(code).is_some(), "{code}");
}

#[tokio::test]
async fn push() {
    let reg = TestRegistry::start().await;
    let c = &reg.client;
    // Streamed: PATCH without Content-Range, then PUT with the digest and no body.
    let blob_a = b"streamed blob A".to_vec();
    let da = Digest::sha256_of(&blob_a);
    let r = c.post(reg.url(&format!("/v2/{NAME}/blobs/uploads/"))).send().await.unwrap();
    assert_eq!(r.status(), 202);
    assert!(r.headers().contains_key("docker-upload-uuid"));
    assert!(r.headers().contains_key("oci-chunk-min-length"));
    let r = c
        .patch(reg.url(&loc(&r)))
        .header("Content-Type", "application/octet-stream")
        .body(blob_a.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["range"], format!("0-{}", blob_a.len() - 1));
    let r = c
        .put(reg.url(&format!("{}?digest={da}", loc(&r))))
        .header("Content-Type", "application/octet-stream")
        .header("Content-Length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(loc(&r), format!("/v2/{NAME}/blobs/{da}"));
    assert_eq!(r.headers()["docker-content-digest"], da.to_string());

    // Monolithic: single POST with digest; POST then PUT.
    let config = br#"{"monolithic":true}"#;
    let dc = Digest::sha256_of(config);
    let r = c.get(reg.url(&format!("/v2/{NAME}/blobs/{dc}"))).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = c
        .post(reg.url(&format!("/v2/{NAME}/blobs/uploads/?digest={dc}")))
        .header("Content-Type", "application/octet-stream")
        .header("Content-Length", config.len().to_string())
        .body(config.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(!loc(&r).is_empty());
    assert_eq!(c.get(reg.url(&format!("/v2/{NAME}/blobs/{dc}"))).send().await.unwrap().status(), 200);
    let layer = vec![7u8; 70_000];
    let dl = post_put(&reg, NAME, &layer).await;

    // Chunked, with an out-of-order chunk, a retried chunk, a status check.
    let blob_b: Vec<u8> = (0..100_000u32).map(|i| (i % 241) as u8).collect();
    let db = Digest::sha256_of(&blob_b);
    let (c1, c2) = blob_b.split_at(60_000);
    let range1 = format!("0-{}", c1.len() - 1);
    let range2 = format!("{}-{}", c1.len(), blob_b.len() - 1);
    let r = c.post(reg.url(&format!("/v2/{NAME}/blobs/uploads/"))).header("Content-Length", "0").send().await.unwrap();
    let r = c
        .patch(reg.url(&loc(&r)))
        .header("Content-Type", "application/octet-stream")
        .header("Content-Range", &range2)
        .body(c2.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416, "out-of-order chunk");
    let first =
        c.post(reg.url(&format!("/v2/{NAME}/blobs/uploads/"))).header("Content-Length", "0").send().await.unwrap();
    let session = loc(&first);
    let r = c
        .patch(reg.url(&session))
        .header("Content-Type", "application/octet-stream")
        .header("Content-Range", &range1)
        .body(c1.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["range"], range1.as_str());
    let r = c
        .patch(reg.url(&session))
        .header("Content-Type", "application/octet-stream")
        .header("Content-Range", &range1)
        .body(c1.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416, "retried chunk");
    let r = c.get(reg.url(&session)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["range"], range1.as_str());
    let session = loc(&r);
    let r = c
        .patch(reg.url(&session))
        .header("Content-Type", "application/octet-stream")
        .header("Content-Range", &range2)
        .body(c2.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["range"], format!("0-{}", blob_b.len() - 1));
    let r = c.put(reg.url(&format!("{}?digest={db}", loc(&r)))).header("Content-Length", "0").send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        Digest::sha256_of(
            &c.get(reg.url(&format!("/v2/{NAME}/blobs/{db}"))).send().await.unwrap().bytes().await.unwrap()
        ),
        db
    );
    // Final chunk in the PUT.
    let r = c.post(reg.url(&format!("/v2/{NAME}/blobs/uploads/"))).send().await.unwrap();
    let r = c.patch(reg.url(&loc(&r))).header("Content-Range", &range1).body(c1.to_vec()).send().await.unwrap();
    let r = c
        .put(reg.url(&format!("{}?digest={db}", loc(&r))))
        .header("Content-Range", &range2)
        .body(c2.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // Cancel.
    let r = c.post(reg.url(&format!("/v2/{NAME}/blobs/uploads/"))).send().await.unwrap();
    let l = loc(&r);
    assert_eq!(c.delete(reg.url(&l)).send().await.unwrap().status(), 204);
    assert_error(c.get(reg.url(&l)).send().await.unwrap(), 404, "BLOB_UPLOAD_UNKNOWN").await;

    // Cross-repository mount.
    let r = c
        .post(reg.url(&format!("/v2/{CROSS}/blobs/uploads/?mount={}", Digest::sha256_of(b"dummy"))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "mount of an unknown blob starts an upload");
    assert!(loc(&r).starts_with(&format!("/v2/{CROSS}/blobs/uploads/")));
    let r = c.post(reg.url(&format!("/v2/{CROSS}/blobs/uploads/?mount={da}&from={NAME}"))).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(loc(&r), format!("/v2/{CROSS}/blobs/{da}"));
    assert_eq!(c.get(reg.url(&loc(&r))).send().await.unwrap().status(), 200);
    let r =
        c.post(reg.url(&format!("/v2/{CROSS}/blobs/uploads/?mount={da}&from=conformance/empty"))).send().await.unwrap();
    assert_eq!(r.status(), 202, "mount from a repository without the blob");
    // Anonymous mount: the blob exists somewhere.
    let r = c.post(reg.url(&format!("/v2/conformance/anon/blobs/uploads/?mount={db}"))).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(c.head(reg.url(&format!("/v2/conformance/anon/blobs/{db}"))).send().await.unwrap().status(), 200);

    // Manifests: four tags, no layers, artifacts, index, nested index, dangling subject.
    let m = manifest(&dc, config.len(), &[(&dl, layer.len())], json!({}));
    let md = Digest::sha256_of(&m);
    assert_eq!(c.get(reg.url(&format!("/v2/{NAME}/manifests/nonexistent"))).send().await.unwrap().status(), 404);
    for i in 0..4 {
        let r = put_manifest(&reg, NAME, &format!("test{i}"), mt::OCI_MANIFEST, &m).await;
        assert_eq!(r.status(), 201);
        assert_eq!(loc(&r), format!("/v2/{NAME}/manifests/{md}"));
    }
    let empty_layers = manifest(&dc, config.len(), &[], json!({}));
    assert_eq!(put_manifest(&reg, NAME, "emptylayer", mt::OCI_MANIFEST, &empty_layers).await.status(), 201);
    let ej = post_put(&reg, NAME, b"{}").await;
    assert_eq!(ej.to_string(), EMPTY_JSON);
    let config_type = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": mt::OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.example.config+json", "digest": dc, "size": config.len()},
        "layers": [{"mediaType": mt::OCI_EMPTY, "digest": ej, "size": 2}]}))
    .unwrap();
    let r =
        put_manifest(&reg, NAME, &Digest::sha256_of(&config_type).to_string(), mt::OCI_MANIFEST, &config_type).await;
    assert_eq!(r.status(), 201);
    let artifact = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": mt::OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom",
        "config": {"mediaType": mt::OCI_EMPTY, "digest": ej, "size": 2},
        "layers": [{"mediaType": "text/plain", "digest": da, "size": blob_a.len()}]}))
    .unwrap();
    let r = put_manifest(&reg, NAME, &Digest::sha256_of(&artifact).to_string(), mt::OCI_MANIFEST, &artifact).await;
    assert_eq!(r.status(), 201);
    let index = serde_json::to_vec_pretty(&json!({"schemaVersion": 2, "mediaType": mt::OCI_INDEX,
        "artifactType": "application/vnd.example.index",
        "manifests": [{"mediaType": mt::OCI_MANIFEST, "digest": md, "size": m.len()}],
        "annotations": {"org.example": "test index"}}))
    .unwrap();
    let idx = Digest::sha256_of(&index);
    assert_eq!(put_manifest(&reg, NAME, &idx.to_string(), mt::OCI_INDEX, &index).await.status(), 201);
    let nested = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": mt::OCI_INDEX,
        "manifests": [{"mediaType": mt::OCI_INDEX, "digest": idx, "size": index.len()}]}))
    .unwrap();
    assert_eq!(
        put_manifest(&reg, NAME, &Digest::sha256_of(&nested).to_string(), mt::OCI_INDEX, &nested).await.status(),
        201
    );
    let dangling_subject = Digest::sha256_of(b"not pushed");
    let dangling = manifest(
        &dc,
        config.len(),
        &[],
        json!({"subject": {"mediaType": mt::OCI_MANIFEST, "digest": dangling_subject, "size": 10}}),
    );
    let r = put_manifest(&reg, NAME, &Digest::sha256_of(&dangling).to_string(), mt::OCI_MANIFEST, &dangling).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["oci-subject"], dangling_subject.to_string());
    let r =
        c.get(reg.url(&format!("/v2/{NAME}/manifests/{md}"))).header("Accept", mt::OCI_MANIFEST).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn content_discovery() {
    let reg = TestRegistry::start().await;
    let c = &reg.client;
    let config = br#"{"discovery":1}"#;
    let dc = post_put(&reg, NAME, config).await;
    let ej = post_put(&reg, NAME, b"{}").await;
    let subject = manifest(&dc, config.len(), &[], json!({}));
    let sd = Digest::sha256_of(&subject);
    let mut tags: Vec<String> = (0..9).map(|i| format!("test{i}")).collect();
    tags.push("latest".into());
    for t in &tags {
        assert_eq!(put_manifest(&reg, NAME, t, mt::OCI_MANIFEST, &subject).await.status(), 201);
    }
    tags.sort();
    // Tags list and pagination.
    let r = c.get(reg.url(&format!("/v2/{NAME}/tags/list"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("link").is_none());
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["name"], NAME);
    assert_eq!(v["tags"], json!(tags));
    let mut seen = Vec::new();
    let mut next = Some(format!("/v2/{NAME}/tags/list?n=4"));
    while let Some(path) = next.take() {
        let r = c.get(reg.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        next = r.headers().get("link").map(|l| {
            let l = l.to_str().unwrap();
            assert!(l.ends_with("; rel=\"next\""), "{l}");
            l[l.find('<').unwrap() + 1..l.find('>').unwrap()].to_string()
        });
        let v: serde_json::Value = r.json().await.unwrap();
        let page: Vec<String> = serde_json::from_value(v["tags"].clone()).unwrap();
        assert!(page.len() <= 4);
        seen.extend(page);
    }
    assert_eq!(seen, tags);
    let r = c.get(reg.url(&format!("/v2/{NAME}/tags/list?n=2&last=test3"))).send().await.unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["tags"], json!(["test4", "test5"]));
    let r = c.get(reg.url(&format!("/v2/{NAME}/tags/list?n=0"))).send().await.unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["tags"], json!([]));
    // Catalog.
    post_put(&reg, "another/repo", b"x").await;
    let r = c.get(reg.url("/v2/_catalog?n=1")).send().await.unwrap();
    assert!(r.headers()["link"].to_str().unwrap().contains("/v2/_catalog?n=1&last=another%2Frepo"));
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["repositories"], json!(["another/repo"]));
    let r = c.get(reg.url("/v2/_catalog")).send().await.unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["repositories"], json!(["another/repo", NAME]));

    // Referrers: two by config media type, two by artifactType, one index; one to a missing subject.
    let subj = json!({"mediaType": mt::OCI_MANIFEST, "digest": sd, "size": subject.len()});
    let mut referrers = Vec::new();
    for (i, (at, by_config)) in [
        ("application/vnd.a", true),
        ("application/vnd.a", false),
        ("application/vnd.b", true),
        ("application/vnd.b", false),
    ]
    .iter()
    .enumerate()
    {
        let layer = post_put(&reg, NAME, format!("ref blob {i}").as_bytes()).await;
        let body = if *by_config {
            json!({"schemaVersion": 2, "mediaType": mt::OCI_MANIFEST,
                "config": {"mediaType": at, "digest": ej, "size": 2},
                "layers": [{"mediaType": "text/plain", "digest": layer, "size": format!("ref blob {i}").len()}],
                "subject": subj, "annotations": {"org.example.n": format!("{i}")}})
        } else {
            json!({"schemaVersion": 2, "mediaType": mt::OCI_MANIFEST, "artifactType": at,
                "config": {"mediaType": mt::OCI_EMPTY, "digest": ej, "size": 2},
                "layers": [{"mediaType": "text/plain", "digest": layer, "size": format!("ref blob {i}").len()}],
                "subject": subj, "annotations": {"org.example.n": format!("{i}")}})
        };
        let bytes = serde_json::to_vec(&body).unwrap();
        let d = Digest::sha256_of(&bytes);
        let r = put_manifest(&reg, NAME, &d.to_string(), mt::OCI_MANIFEST, &bytes).await;
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers()["oci-subject"], sd.to_string());
        referrers.push((d, at.to_string()));
    }
    let first = referrers[0].0.clone();
    let idx = serde_json::to_vec(
        &json!({"schemaVersion": 2, "mediaType": mt::OCI_INDEX, "artifactType": "application/vnd.idx",
        "manifests": [{"mediaType": mt::OCI_MANIFEST, "digest": first, "size": 1}],
        "subject": subj, "annotations": {"org.example.n": "index"}}),
    )
    .unwrap();
    let r = put_manifest(&reg, NAME, &Digest::sha256_of(&idx).to_string(), mt::OCI_INDEX, &idx).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["oci-subject"], sd.to_string());

    let r = c.get(reg.url(&format!("/v2/{NAME}/referrers/{}", Digest::sha256_of(b"dummy")))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], mt::OCI_INDEX);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["manifests"], json!([]));
    let r = c.get(reg.url(&format!("/v2/{NAME}/referrers/{sd}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], mt::OCI_INDEX);
    assert!(r.headers().get("oci-filters-applied").is_none());
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["schemaVersion"], 2);
    assert_eq!(v["mediaType"], mt::OCI_INDEX);
    let list = v["manifests"].as_array().unwrap();
    assert_eq!(list.len(), 5);
    for e in list {
        assert_eq!(e["annotations"].as_object().unwrap().len(), 1);
        assert!(e["artifactType"].is_string());
        assert!(e["size"].as_u64().unwrap() > 0);
    }
    let r = c.get(reg.url(&format!("/v2/{NAME}/referrers/{sd}?artifactType=application/vnd.a"))).send().await.unwrap();
    assert_eq!(r.headers()["oci-filters-applied"], "artifactType");
    let v: serde_json::Value = r.json().await.unwrap();
    let list = v["manifests"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|e| e["artifactType"] == "application/vnd.a"));
    // Deleting a referrer removes it from the list.
    let r = c.delete(reg.url(&format!("/v2/{NAME}/manifests/{}", referrers[2].0))).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let v: serde_json::Value =
        c.get(reg.url(&format!("/v2/{NAME}/referrers/{sd}"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn content_management() {
    let reg = TestRegistry::start().await;
    let c = &reg.client;
    let config = br#"{"management":1}"#;
    let dc = post_put(&reg, NAME, config).await;
    let m = manifest(&dc, config.len(), &[], json!({}));
    let md = Digest::sha256_of(&m);
    for t in ["tagTest0", "tagTest1"] {
        assert_eq!(put_manifest(&reg, NAME, t, mt::OCI_MANIFEST, &m).await.status(), 201);
    }
    let other = manifest(&dc, config.len(), &[], json!({"annotations": {"x": "y"}}));
    assert_eq!(put_manifest(&reg, NAME, "keep", mt::OCI_MANIFEST, &other).await.status(), 201);
    // Tag delete.
    assert_eq!(c.delete(reg.url(&format!("/v2/{NAME}/manifests/tagTest0"))).send().await.unwrap().status(), 202);
    assert_eq!(c.get(reg.url(&format!("/v2/{NAME}/manifests/tagTest0"))).send().await.unwrap().status(), 404);
    assert_eq!(c.get(reg.url(&format!("/v2/{NAME}/manifests/{md}"))).send().await.unwrap().status(), 200);
    // Manifest delete by digest takes its tags along.
    assert_eq!(c.delete(reg.url(&format!("/v2/{NAME}/manifests/{md}"))).send().await.unwrap().status(), 202);
    assert_eq!(c.get(reg.url(&format!("/v2/{NAME}/manifests/{md}"))).send().await.unwrap().status(), 404);
    assert_eq!(c.get(reg.url(&format!("/v2/{NAME}/manifests/tagTest1"))).send().await.unwrap().status(), 404);
    assert_error(
        c.delete(reg.url(&format!("/v2/{NAME}/manifests/{md}"))).send().await.unwrap(),
        404,
        "MANIFEST_UNKNOWN",
    )
    .await;
    let v: serde_json::Value =
        c.get(reg.url(&format!("/v2/{NAME}/tags/list"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["tags"], json!(["keep"]));
    // Blob delete.
    assert_eq!(c.delete(reg.url(&format!("/v2/{NAME}/blobs/{dc}"))).send().await.unwrap().status(), 202);
    assert_eq!(c.get(reg.url(&format!("/v2/{NAME}/blobs/{dc}"))).send().await.unwrap().status(), 404);
    assert_error(c.delete(reg.url(&format!("/v2/{NAME}/blobs/{dc}"))).send().await.unwrap(), 404, "BLOB_UNKNOWN").await;
}

#[tokio::test]
async fn deletes_disabled() {
    let reg = TestRegistry::start_with(|c| c.storage.delete_enabled = false).await;
    reg.push_image(NAME, "v1", &[b"x"]).await;
    let r = reg.client.delete(reg.url(&format!("/v2/{NAME}/manifests/v1"))).send().await.unwrap();
    assert_error(r, 405, "UNSUPPORTED").await;
}

#[tokio::test]
async fn sha512_digests() {
    let reg = TestRegistry::start().await;
    let c = &reg.client;
    let data = b"sha512 content".to_vec();
    let d = Digest::of(Algorithm::Sha512, &data);
    // Single POST.
    let r = c.post(reg.url(&format!("/v2/{NAME}/blobs/uploads/?digest={d}"))).body(data.clone()).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["docker-content-digest"], d.to_string());
    let r = c.get(reg.url(&format!("/v2/{NAME}/blobs/{d}"))).send().await.unwrap();
    assert_eq!(r.headers()["docker-content-digest"], d.to_string());
    assert_eq!(&r.bytes().await.unwrap()[..], &data[..]);
    // Chunked, where the running hash is sha256 until the digest is known.
    let d2 = Digest::of(Algorithm::Sha512, b"chunk one,chunk two");
    let r = c.post(reg.url(&format!("/v2/{NAME}/blobs/uploads/"))).send().await.unwrap();
    let r = c.patch(reg.url(&loc(&r))).body("chunk one,").send().await.unwrap();
    let r = c.put(reg.url(&format!("{}?digest={d2}", loc(&r)))).body("chunk two").send().await.unwrap();
    assert_eq!(r.status(), 201);
    // A manifest addressed by sha512.
    let cfg = b"{}";
    let dc = Digest::of(Algorithm::Sha512, cfg);
    assert_eq!(
        c.post(reg.url(&format!("/v2/{NAME}/blobs/uploads/?digest={dc}")))
            .body(cfg.to_vec())
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    let m = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": mt::OCI_MANIFEST,
        "config": {"mediaType": mt::OCI_CONFIG, "digest": dc, "size": 2},
        "layers": [{"mediaType": mt::OCI_LAYER_TAR, "digest": d, "size": data.len()}]}))
    .unwrap();
    let md = Digest::of(Algorithm::Sha512, &m);
    let r = put_manifest(&reg, NAME, &md.to_string(), mt::OCI_MANIFEST, &m).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["docker-content-digest"], md.to_string());
    let r = c.get(reg.url(&format!("/v2/{NAME}/manifests/{md}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(&r.bytes().await.unwrap()[..], &m[..]);
    // A wrong sha512.
    let wrong = Digest::of(Algorithm::Sha512, b"other");
    let r = c.post(reg.url(&format!("/v2/{NAME}/blobs/uploads/?digest={wrong}"))).body("x").send().await.unwrap();
    assert_error(r, 400, "DIGEST_INVALID").await;
}

#[tokio::test]
async fn error_codes_and_statuses() {
    let reg = TestRegistry::start().await;
    let c = &reg.client;
    let d = Digest::sha256_of(b"absent");
    assert_error(c.get(reg.url(&format!("/v2/{NAME}/blobs/{d}"))).send().await.unwrap(), 404, "BLOB_UNKNOWN").await;
    assert_error(
        c.get(reg.url(&format!("/v2/{NAME}/blobs/sha256:short"))).send().await.unwrap(),
        400,
        "DIGEST_INVALID",
    )
    .await;
    assert_error(c.get(reg.url(&format!("/v2/{NAME}/manifests/{d}"))).send().await.unwrap(), 404, "MANIFEST_UNKNOWN")
        .await;
    assert_error(c.get(reg.url("/v2/Bad_Name/tags/list")).send().await.unwrap(), 400, "NAME_INVALID").await;
    assert_error(c.get(reg.url(&format!("/v2/{NAME}/tags/list"))).send().await.unwrap(), 404, "NAME_UNKNOWN").await;
    let r = c
        .put(reg.url(&format!("/v2/{NAME}/blobs/uploads/00000000-0000-4000-8000-000000000000?digest={d}")))
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let r = put_manifest(&reg, NAME, "v1", mt::OCI_MANIFEST, &manifest(&d, 5, &[], json!({}))).await;
    assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN").await;
    let r = put_manifest(&reg, NAME, "bad:tag!", mt::OCI_MANIFEST, b"{}").await;
    assert_eq!(r.status(), 400);
    let r = c.request(reqwest::Method::OPTIONS, reg.url(&format!("/v2/{NAME}/tags/list"))).send().await.unwrap();
    assert_error(r, 405, "UNSUPPORTED").await;
    // Error bodies are JSON with the spec's shape.
    let r = c.get(reg.url(&format!("/v2/{NAME}/manifests/nope"))).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["errors"][0]["message"].is_string());
}
