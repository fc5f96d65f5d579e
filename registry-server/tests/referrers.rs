//! The referrers API paginated: `n` and `last`, and the `Link` header to the next page.

mod common;

use common::{TestRegistry, assert_error};
use rbuild_image::{Descriptor, media_type as mt};

fn digests(v: &serde_json::Value) -> Vec<String> {
    v["manifests"].as_array().unwrap().iter().map(|m| m["digest"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn referrers_are_paginated_with_a_link_header() {
    let reg = TestRegistry::start().await;
    let subject = reg.push_image("app", "v1", &[b"base layer"]).await;
    let sd = Descriptor::new(mt::OCI_MANIFEST, subject.digest().clone(), subject.bytes().len() as u64);
    let mut want = Vec::new();
    for i in 0..5 {
        let layer = format!("signature {i}");
        let m = reg.image_manifest("app", &[layer.as_bytes()], Some(sd.clone())).await;
        reg.put_manifest("app", &m.digest().to_string(), &m).await;
        want.push(m.digest().to_string());
    }
    want.sort();

    let all: serde_json::Value = reg
        .client
        .get(reg.url(&format!("/v2/app/referrers/{}", sd.digest)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(digests(&all), want, "one page without n");

    let mut got = Vec::new();
    // A '+' in a query means a space: the media type's is sent encoded.
    let at = mt::OCI_CONFIG.replace('+', "%2B");
    let mut next = Some(format!("/v2/app/referrers/{}?n=2&artifactType={at}", sd.digest));
    let mut pages = 0;
    while let Some(path) = next.take() {
        let r = reg.client.get(reg.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], mt::OCI_INDEX);
        assert_eq!(r.headers()["oci-filters-applied"], "artifactType", "{path}: the filter follows the link");
        next = r.headers().get("link").map(|l| {
            let l = l.to_str().unwrap();
            assert!(l.ends_with(">; rel=\"next\""), "{l}");
            l.trim_start_matches('<').split('>').next().unwrap().to_string()
        });
        let page: serde_json::Value = r.json().await.unwrap();
        let d = digests(&page);
        assert!(d.len() <= 2, "{path}: {d:?}");
        assert_eq!(page["mediaType"], mt::OCI_INDEX);
        got.extend(d);
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(got, want, "every referrer once, in order");

    let r = reg.client.get(reg.url(&format!("/v2/app/referrers/{}?n=2&last={}", sd.digest, want[3]))).send().await;
    let last: serde_json::Value = r.unwrap().json().await.unwrap();
    assert_eq!(digests(&last), [want[4].clone()]);
    let r = reg.client.get(reg.url(&format!("/v2/app/referrers/{}?n=many", sd.digest))).send().await.unwrap();
    assert_error(r, 400, "PAGINATION_NUMBER_INVALID").await;
}
