//! The one test suite every storage driver runs (filesystem, memory, and later S3):
//! `run(driver).await` panics on the first broken promise of the [`StorageDriver`] contract.

use super::{ByteStream, StorageDriver, once_stream};
use bytes::Bytes;
use futures::StreamExt;

async fn read_all(d: &dyn StorageDriver, path: &str, offset: u64) -> Vec<u8> {
    let mut s = d.read(path, offset).await.unwrap_or_else(|e| panic!("read {path}: {e}"));
    let mut out = Vec::new();
    while let Some(b) = s.next().await {
        out.extend_from_slice(&b.unwrap());
    }
    out
}

fn chunks(parts: &[&[u8]]) -> ByteStream {
    let v: Vec<std::io::Result<Bytes>> = parts.iter().map(|p| Ok(Bytes::copy_from_slice(p))).collect();
    Box::pin(futures::stream::iter(v))
}

fn failing(first: &'static [u8]) -> ByteStream {
    Box::pin(futures::stream::iter(vec![Ok(Bytes::from_static(first)), Err(std::io::Error::other("client went away"))]))
}

/// Run every check against `d`, which must be empty.
pub async fn run(d: &dyn StorageDriver) {
    // Absent things.
    assert!(d.stat("a/b").await.unwrap().is_none());
    assert!(d.get_content("a/b").await.unwrap_err().is_not_found());
    assert!(d.read("a/b", 0).await.is_err());
    assert!(d.list("a").await.unwrap().is_empty());
    assert!(!d.delete("a").await.unwrap());
    assert!(d.rename("a/x", "a/y").await.unwrap_err().is_not_found());

    // Small files, replaced whole.
    d.put_content("a/b/c", Bytes::from_static(b"hello")).await.unwrap();
    assert_eq!(&d.get_content("a/b/c").await.unwrap()[..], b"hello");
    d.put_content("a/b/c", Bytes::from_static(b"bye")).await.unwrap();
    assert_eq!(&d.get_content("a/b/c").await.unwrap()[..], b"bye");
    let st = d.stat("a/b/c").await.unwrap().unwrap();
    assert_eq!((st.size, st.is_dir), (3, false));
    assert!(d.stat("a/b").await.unwrap().unwrap().is_dir);

    // Listing: direct children only, sorted, directories implied.
    d.put_content("a/b/a", Bytes::from_static(b"1")).await.unwrap();
    d.put_content("a/b/z/deep", Bytes::from_static(b"2")).await.unwrap();
    assert_eq!(d.list("a/b").await.unwrap(), vec!["a", "c", "z"]);
    assert_eq!(d.list("a").await.unwrap(), vec!["b"]);

    // Streams: write, read from offsets, append.
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let n = d.write("s/big", chunks(&[&big[..300_000], &big[300_000..]])).await.unwrap();
    assert_eq!(n, big.len() as u64);
    assert_eq!(read_all(d, "s/big", 0).await, big);
    assert_eq!(read_all(d, "s/big", 999_990).await, &big[999_990..]);
    assert!(read_all(d, "s/big", 2_000_000).await.is_empty());
    assert_eq!(d.append("s/app", chunks(&[b"ab", b"cd"])).await.unwrap(), 4);
    assert_eq!(d.append("s/app", once_stream(Bytes::from_static(b"ef"))).await.unwrap(), 6);
    assert_eq!(d.append("s/app", chunks(&[])).await.unwrap(), 6);
    assert_eq!(&d.get_content("s/app").await.unwrap()[..], b"abcdef");

    // A failed write leaves the old content; a failed append keeps what came before the error.
    assert!(d.write("s/app", failing(b"XYZ")).await.is_err());
    assert_eq!(&d.get_content("s/app").await.unwrap()[..], b"abcdef");
    assert!(d.write("s/new", failing(b"XYZ")).await.is_err());
    assert!(d.stat("s/new").await.unwrap().is_none());
    assert!(d.list("s").await.unwrap().iter().all(|n| n == "app" || n == "big"), "{:?}", d.list("s").await);
    assert!(d.append("s/app", failing(b"gh")).await.is_err());
    assert_eq!(&d.get_content("s/app").await.unwrap()[..], b"abcdefgh");

    // Rename replaces the target.
    d.rename("s/app", "t/moved").await.unwrap();
    assert!(d.stat("s/app").await.unwrap().is_none());
    d.put_content("t/other", Bytes::from_static(b"old")).await.unwrap();
    d.rename("t/moved", "t/other").await.unwrap();
    assert_eq!(&d.get_content("t/other").await.unwrap()[..], b"abcdefgh");

    // Touch moves the modification time forward.
    let before = d.stat("t/other").await.unwrap().unwrap().modified;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    d.touch("t/other").await.unwrap();
    assert!(d.stat("t/other").await.unwrap().unwrap().modified > before);

    // Delete: files and whole trees.
    assert!(d.delete("a/b/c").await.unwrap());
    assert!(d.stat("a/b/c").await.unwrap().is_none());
    assert!(d.delete("a").await.unwrap());
    assert!(d.stat("a/b/z/deep").await.unwrap().is_none());
    assert!(d.list("a").await.unwrap().is_empty());

    // Paths that try to escape are refused, not resolved.
    for bad in ["", "/etc/passwd", "a/../b", "a//b", "./a", "a/.", "a\\b"] {
        assert!(d.put_content(bad, Bytes::from_static(b"x")).await.is_err(), "{bad:?} accepted");
        assert!(d.stat(bad).await.is_err(), "{bad:?} accepted by stat");
    }

    // Concurrent appends to different files do not mix.
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        tasks.push(async move {
            let data = vec![i; 100_000];
            d.append(&format!("c/{i}"), chunks(&[&data[..50_000], &data[50_000..]])).await.unwrap();
        });
    }
    futures::future::join_all(tasks).await;
    for i in 0..8u8 {
        assert_eq!(&d.get_content(&format!("c/{i}")).await.unwrap()[..], &vec![i; 100_000][..]);
    }
}
