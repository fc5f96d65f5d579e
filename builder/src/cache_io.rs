//! `--cache-to` / `--cache-from`: the cache records a build used, shared between machines
//! as an OCI image whose layers are the cached layers and whose config carries the records
//! (key -> layer + history). `type=local` is an OCI layout directory; `type=registry` the
//! same manifest pushed to a registry.

use crate::CacheSpec;
use crate::cache::Record;
use crate::solver::Builder;
use crate::{Error, Result};
use rbuild_image::manifest::ImageManifest;
use rbuild_image::{Descriptor, RawManifest, Reference, Store, media_type as mt};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The config media type of a cache image.
pub const CACHE_CONFIG_TYPE: &str = "application/vnd.rbuild.buildcache.config.v1+json";
const LOCAL_TAG: &str = "rbuild-buildcache:latest";

fn cache_manifest(b: &Builder) -> Result<(RawManifest, Vec<u8>, Vec<Descriptor>)> {
    let used = b.records_used.lock().expect("lock").clone();
    let records: BTreeMap<String, Record> = used.into_iter().collect();
    let mut layers: Vec<Descriptor> = Vec::new();
    for r in records.values() {
        if let Some(l) = &r.layer {
            if !layers.iter().any(|d| d.digest == l.diff_id) {
                layers.push(l.descriptor());
            }
        }
    }
    let config =
        serde_json::to_vec(&serde_json::json!({ "records": records })).map_err(|e| Error::Invalid(e.to_string()))?;
    let cd = b.store.put_blob_bytes(&config)?;
    let m = ImageManifest {
        schema_version: 2,
        media_type: Some(mt::OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor::new(CACHE_CONFIG_TYPE, cd, config.len() as u64),
        layers: layers.clone(),
        subject: None,
        annotations: Default::default(),
    };
    let raw = RawManifest::from_image(&m)?;
    b.store.put_manifest(&raw)?;
    Ok((raw, config, layers))
}

/// Export the records this build used.
pub fn export(b: &Builder, spec: &CacheSpec) -> Result<()> {
    let (raw, config, layers) = cache_manifest(b)?;
    match spec {
        CacheSpec::Local(dir) => {
            let out = Store::open(dir)?;
            for l in &layers {
                out.put_blob_verified(b.store.open_blob(&l.digest)?, &l.digest, Some(l.size))?;
            }
            out.put_blob_bytes(&config)?;
            out.put_manifest(&raw)?;
            out.tag(&Reference::parse(LOCAL_TAG)?, &raw.descriptor())?;
            Ok(())
        }
        CacheSpec::Registry(r) => {
            let r = Reference::parse(r).map_err(|e| Error::Invalid(format!("--cache-to ref: {e}")))?.with_default_tag();
            let remote = b.resolver.remote();
            let client = remote.client()?;
            let p: Arc<dyn rbuild_registry_client::Progress> = Arc::new(rbuild_registry_client::progress::NoProgress);
            remote.block_on(client.push(&b.store, &raw, &r, &p))?.map_err(|source| Error::Registry {
                what: format!("exporting the cache to {r}"),
                source: Box::new(source),
            })?;
            Ok(())
        }
    }
}

fn add_records(b: &Builder, config: &[u8], mut fetch: impl FnMut(&Descriptor) -> Result<()>) -> Result<usize> {
    #[derive(serde::Deserialize)]
    struct Cfg {
        records: BTreeMap<String, Record>,
    }
    let c: Cfg = serde_json::from_slice(config).map_err(|e| Error::Invalid(format!("cache config: {e}")))?;
    let mut n = 0;
    for (k, r) in c.records {
        if b.cache.get(&k).is_some() {
            continue;
        }
        if let Some(l) = &r.layer {
            fetch(&l.descriptor())?;
        }
        b.cache.put(&k, &r)?;
        n += 1;
    }
    b.cache.pin()?;
    Ok(n)
}

/// Import records (and their layers) from a cache export.
pub fn import(b: &Builder, spec: &CacheSpec) -> Result<usize> {
    match spec {
        CacheSpec::Local(dir) => {
            let src = Store::open(dir)?;
            let d = src
                .lookup_tag(&Reference::parse(LOCAL_TAG)?)?
                .ok_or_else(|| Error::Invalid(format!("{} holds no rbuild cache", dir.display())))?;
            let m = src.read_manifest(&d)?;
            let img = m.as_image().ok_or_else(|| Error::Invalid("cache manifest is not an image manifest".into()))?;
            let config = src.read_blob(&img.config.digest)?;
            add_records(b, &config, |l| {
                Ok(b.store.put_blob_verified(src.open_blob(&l.digest)?, &l.digest, Some(l.size))?)
            })
        }
        CacheSpec::Registry(r) => {
            let r =
                Reference::parse(r).map_err(|e| Error::Invalid(format!("--cache-from ref: {e}")))?.with_default_tag();
            let remote = b.resolver.remote();
            let client = remote.client()?;
            let p: Arc<dyn rbuild_registry_client::Progress> = Arc::new(rbuild_registry_client::progress::NoProgress);
            let res = remote.block_on(client.resolve(&r, &rbuild_image::Platform::host()))?.map_err(|source| {
                Error::Registry { what: format!("importing the cache from {r}"), source: Box::new(source) }
            })?;
            let img = res
                .manifest
                .as_image()
                .ok_or_else(|| Error::Invalid("cache manifest is not an image manifest".into()))?
                .clone();
            remote.block_on(client.fetch_blob_to_store(&b.store, &r, &img.config, &p))?.map_err(|source| {
                Error::Registry { what: format!("fetching the cache config of {r}"), source: Box::new(source) }
            })?;
            let config = b.store.read_blob(&img.config.digest)?;
            add_records(b, &config, |l| {
                remote.block_on(client.fetch_blob_to_store(&b.store, &r, l, &p))?.map_err(|source| Error::Registry {
                    what: format!("fetching cached layer {}", l.digest),
                    source: Box::new(source),
                })
            })
        }
    }
}
