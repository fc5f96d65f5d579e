//! Every storage driver runs the one shared suite.

use rbuild_registry_server::storage::testsuite;
use rbuild_registry_server::{FsDriver, MemoryDriver};

#[tokio::test]
async fn filesystem_driver_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let d = FsDriver::new(dir.path()).unwrap();
    testsuite::run(&d).await;
    // Nothing outside the root was written by the path-escape attempts.
    assert!(!dir.path().parent().unwrap().join("b").exists());
}

#[tokio::test]
async fn memory_driver_passes_the_suite() {
    testsuite::run(&MemoryDriver::new()).await;
}

#[tokio::test]
async fn filesystem_driver_without_fsync_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    testsuite::run(&FsDriver::new(dir.path()).unwrap().with_fsync(false)).await;
}
