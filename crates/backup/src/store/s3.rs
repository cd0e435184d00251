//! A repository in an S3-compatible object store, through the `object_store` crate.
//!
//! Requests are signed with the credentials of [`S3Settings`] (unsigned without them), go to
//! the URL's endpoint with path-style addressing when one is given (MinIO, moto, Ceph, R2),
//! and are retried by the client on transient failures. Objects are written with
//! `If-None-Match: *`, so an existing object is never replaced.
//!
//! No request waits for ever on a connection that stopped answering (a network that drops
//! packets rather than refusing them, a load balancer that lost the connection's state): the
//! client gives up when no byte of an answer arrives for a while and the request is retried on
//! a new connection. That wait is short for the small requests replication makes every second
//! ([`ANSWER_WAIT`]: a segment, a manifest, a listing), so that its lag recovers within seconds
//! of the store answering again, and long enough for a whole part of a large upload to be sent
//! on a slow link for the streams of snapshots ([`STREAM_ANSWER_WAIT`]), which have no limit
//! on their total time: a download of gigabytes takes what it takes as long as bytes arrive.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use futures::TryStreamExt;
use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig,
    aws::AmazonS3Builder, path::Path,
};

use super::{
    DirListing, ObjectMeta, ObjectReader, ObjectWriter, PendingUpload, Put, S3Location, S3Settings,
    WriterKind, pipe,
};
use crate::{Error, Result};

/// A bucket prefix.
#[derive(Debug, Clone)]
pub(crate) struct S3Store {
    /// For requests whose body and answer are small: objects written whole, reads of small
    /// objects, listings, deletes.
    client: Renewing,
    /// For the streams of large objects ([`S3Store::upload`], [`S3Store::download`]).
    streams: Arc<dyn ObjectStore>,
    location: S3Location,
}

/// How long a request of [`S3Store::client`] waits for the first byte of its answer, and then
/// for each further one: a write of a small object is on the wire at once, so this is the
/// store's silence, not the link's speed.
const ANSWER_WAIT: Duration = Duration::from_secs(10);

/// Objects written whole up to this size go through [`S3Store::client`]; larger ones through
/// [`S3Store::streams`] (at [`ANSWER_WAIT`], 1 MiB is sent at 100 KiB/s).
const SMALL_BODY: usize = 1 << 20;

/// The longest a request of [`S3Store::client`] may take in all (a listing of many pages
/// still answers page by page within [`ANSWER_WAIT`]).
const REQUEST_LIMIT: Duration = Duration::from_secs(120);

/// The same wait as [`ANSWER_WAIT`] for [`S3Store::streams`]: from the start of a request
/// until its answer, it covers sending a whole part of a multipart upload (up to
/// [`pipe::SINGLE_PUT_MAX`], 16 MiB: about 280 KiB/s at least).
const STREAM_ANSWER_WAIT: Duration = Duration::from_secs(60);

/// The region when neither the URL nor the settings name one.
const DEFAULT_REGION: &str = "us-east-1";

impl S3Store {
    /// Builds the client (no request is sent).
    pub(crate) fn open(location: &S3Location, settings: &S3Settings) -> Result<Self> {
        let region = location
            .region
            .clone()
            .or_else(|| settings.default_region.clone())
            .unwrap_or_else(|| DEFAULT_REGION.to_owned());
        let endpoint = location
            .endpoint
            .clone()
            .or_else(|| settings.default_endpoint.clone());
        // The defaults come from the environment: checked like the URL's own parameters.
        let invalid = |why: String| Error::InvalidConfig(format!("repository {location}: {why}"));
        super::location::check_region(&region).map_err(invalid)?;
        if let Some(endpoint) = &endpoint {
            super::location::check_endpoint(endpoint).map_err(invalid)?;
        }
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&location.bucket)
            .with_region(region)
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(15),
                ..RetryConfig::default()
            });
        if let Some(endpoint) = &endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        match (&settings.access_key_id, &settings.secret_access_key) {
            (Some(key), Some(secret)) => {
                builder = builder
                    .with_access_key_id(key)
                    .with_secret_access_key(secret);
                if let Some(token) = &settings.session_token {
                    builder = builder.with_token(token);
                }
            }
            // Without credentials, requests go unsigned (a public or test bucket) rather than
            // to the instance metadata service.
            _ => builder = builder.with_skip_signature(true),
        }
        // The client options carry `allow_http` too: set here, not on the builder, which they
        // replace.
        let allow_http = endpoint.as_ref().is_some_and(|e| e.starts_with("http://"));
        let with = |options: ClientOptions| {
            builder.clone().with_client_options(
                options
                    .with_allow_http(allow_http)
                    .with_connect_timeout(Duration::from_secs(5)),
            )
        };
        let invalid = |e: object_store::Error| {
            Error::InvalidConfig(format!("{location}: {}", crate::error_chain(&e)))
        };
        let client = Renewing::new(with(
            ClientOptions::new()
                .with_read_timeout(ANSWER_WAIT)
                .with_timeout(REQUEST_LIMIT),
        ))
        .map_err(invalid)?;
        let streams = with(
            ClientOptions::new()
                .with_read_timeout(STREAM_ANSWER_WAIT)
                .with_timeout_disabled(),
        )
        .build()
        .map_err(invalid)?;
        let mut location = location.clone();
        location.endpoint = endpoint;
        Ok(Self {
            client,
            streams: Arc::new(streams),
            location,
        })
    }

    fn path(&self, key: &str) -> Path {
        Path::from(self.full_key(key))
    }

    fn full_key(&self, key: &str) -> String {
        if self.location.prefix.is_empty() {
            key.to_owned()
        } else if key.is_empty() {
            self.location.prefix.clone()
        } else {
            format!("{}/{key}", self.location.prefix)
        }
    }

    /// The key relative to the repository of an object's full path.
    fn relative(&self, path: &Path) -> String {
        let full = path.as_ref();
        match self.location.prefix.as_str() {
            "" => full.to_owned(),
            prefix => full
                .strip_prefix(prefix)
                .map(|rest| rest.trim_start_matches('/').to_owned())
                .unwrap_or_else(|| full.to_owned()),
        }
    }

    pub(crate) fn describe(&self, key: &str) -> String {
        format!("s3://{}/{}", self.location.bucket, self.full_key(key))
    }

    fn meta(&self, meta: object_store::ObjectMeta) -> ObjectMeta {
        ObjectMeta {
            key: self.relative(&meta.location),
            size: meta.size,
            modified: meta.last_modified,
        }
    }

    pub(crate) async fn put_once(&self, key: &str, bytes: Vec<u8>) -> Result<Put> {
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let path = self.path(key);
        let payload = PutPayload::from(bytes.clone());
        // A large body may take longer to send than the small requests' wait for an answer.
        let put = if bytes.len() > SMALL_BODY {
            self.streams.put_opts(&path, payload, options).await
        } else {
            self.client
                .call(|c| async move { c.put_opts(&path, payload, options).await })
                .await
        };
        match put {
            Ok(_) => Ok(Put::Created),
            Err(object_store::Error::AlreadyExists { .. }) => match self.get(key).await? {
                Some(existing) if existing == bytes => Ok(Put::AlreadyThere),
                _ => Err(Error::ObjectExists {
                    object: self.describe(key),
                }),
            },
            Err(e) => Err(store_error("write", &self.describe(key), e)),
        }
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let describe = self.describe(key);
        let path = self.path(key);
        let read = self
            .client
            .call(|c| async move { c.get(&path).await?.bytes().await })
            .await;
        match read {
            Ok(bytes) => Ok(Some(bytes.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error("read", &describe, e)),
        }
    }

    pub(crate) async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let path = self.path(key);
        match self
            .client
            .call(|c| async move { c.head(&path).await })
            .await
        {
            Ok(meta) => Ok(Some(self.meta(meta))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error("inspect", &self.describe(key), e)),
        }
    }

    pub(crate) async fn list(&self, dir: &str) -> Result<Vec<ObjectMeta>> {
        let prefix = self.dir_path(dir);
        let found: Vec<object_store::ObjectMeta> = self
            .client
            .call(|c| async move { c.list(prefix.as_ref()).try_collect().await })
            .await
            .map_err(|e| store_error("list", &self.describe_dir(dir), e))?;
        Ok(found.into_iter().map(|m| self.meta(m)).collect())
    }

    pub(crate) async fn list_dir(&self, dir: &str) -> Result<DirListing> {
        let prefix = self.dir_path(dir);
        let found = self
            .client
            .call(|c| async move { c.list_with_delimiter(prefix.as_ref()).await })
            .await
            .map_err(|e| store_error("list", &self.describe_dir(dir), e))?;
        Ok(DirListing {
            objects: found.objects.into_iter().map(|m| self.meta(m)).collect(),
            dirs: found
                .common_prefixes
                .iter()
                .map(|p| self.relative(p))
                .collect(),
        })
    }

    fn dir_path(&self, dir: &str) -> Option<Path> {
        let full = self.full_key(dir.trim_matches('/'));
        (!full.is_empty()).then(|| Path::from(full))
    }

    fn describe_dir(&self, dir: &str) -> String {
        format!("{}/", self.describe(dir.trim_matches('/')))
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key);
        match self
            .client
            .call(|c| async move { c.delete(&path).await })
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error("delete", &self.describe(key), e)),
        }
    }

    pub(crate) async fn upload(&self, key: &str) -> Result<(ObjectWriter, PendingUpload)> {
        let describe = self.describe(key);
        let (writer, pending) =
            pipe::upload(Arc::clone(&self.streams), self.path(key), describe.clone());
        Ok((
            ObjectWriter {
                inner: WriterKind::S3(writer),
                describe,
            },
            PendingUpload::S3(pending),
        ))
    }

    pub(crate) async fn download(&self, key: &str) -> Result<Option<ObjectReader>> {
        let describe = self.describe(key);
        match self.streams.get(&self.path(key)).await {
            Ok(result) => Ok(Some(ObjectReader::S3(pipe::download(result, describe)))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error("read", &describe, e)),
        }
    }
}

/// A client whose pool of connections is thrown away when one of its requests went
/// unanswered for [`ANSWER_WAIT`]: the other connections of the pool most likely lead nowhere
/// either (a network that dropped them, a load balancer that forgot them), and each would
/// make one more request wait that long before the pool forgets it. Requests in flight on
/// the old client finish there; new ones go to a new client.
#[derive(Debug, Clone)]
struct Renewing {
    /// Shared, not copied with the store: a builder is over a kilobyte.
    builder: Arc<AmazonS3Builder>,
    current: Arc<Mutex<Arc<dyn ObjectStore>>>,
}

impl Renewing {
    fn new(builder: AmazonS3Builder) -> object_store::Result<Self> {
        let current: Arc<dyn ObjectStore> = Arc::new(builder.clone().build()?);
        Ok(Self {
            builder: Arc::new(builder),
            current: Arc::new(Mutex::new(current)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Arc<dyn ObjectStore>> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `request` on the current client, and renews the client when it failed after
    /// waiting at least [`ANSWER_WAIT`] (unless another request renewed it meanwhile).
    async fn call<T, F, Fut>(&self, request: F) -> object_store::Result<T>
    where
        F: FnOnce(Arc<dyn ObjectStore>) -> Fut,
        Fut: Future<Output = object_store::Result<T>>,
    {
        let used = Arc::clone(&self.lock());
        let started = Instant::now();
        let result = request(Arc::clone(&used)).await;
        if result.is_err() && started.elapsed() >= ANSWER_WAIT {
            let mut current = self.lock();
            if Arc::ptr_eq(&current, &used) {
                // The builder built this client once already: it builds it again.
                if let Ok(fresh) = AmazonS3Builder::clone(&self.builder).build() {
                    tracing::warn!("the object store left a request unanswered; reconnecting");
                    *current = Arc::new(fresh);
                }
            }
        }
        result
    }
}

/// An error of the object store client, with what was being done to which object.
pub(crate) fn store_error(
    action: &'static str,
    object: &str,
    source: object_store::Error,
) -> Error {
    Error::Store {
        action,
        object: object.to_owned(),
        source: Box::new(source),
    }
}

#[cfg(test)]
mod tests {
    use db_connect::testing::{MotoServer, S3Bucket, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY};

    use super::*;
    use crate::store::{RepositoryLocation, Store, contract};

    fn store(bucket: &S3Bucket, prefix: &str) -> Store {
        let RepositoryLocation::S3(location) =
            RepositoryLocation::parse(&bucket.url(prefix)).unwrap()
        else {
            panic!("not an s3 url")
        };
        let settings = S3Settings {
            access_key_id: Some(TEST_ACCESS_KEY_ID.to_owned()),
            secret_access_key: Some(TEST_SECRET_ACCESS_KEY.to_owned()),
            ..S3Settings::default()
        };
        Store::S3(S3Store::open(&location, &settings).unwrap())
    }

    /// The same contract as a directory, with a large object past the single-PUT size (a
    /// multipart upload), and listings that stay inside the prefix.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bucket_prefix_honours_the_store_contract() {
        let Some(moto) = MotoServer::start() else {
            return;
        };
        let bucket = moto.bucket("store");
        let neighbour = store(&bucket, "repo/ab");
        neighbour.put_once("x.json", b"n".to_vec()).await.unwrap();
        contract::check(&store(&bucket, "repo/a"), pipe::SINGLE_PUT_MAX + (1 << 20)).await;
        assert_eq!(
            bucket.keys(),
            ["repo/ab/x.json"],
            "nothing outside the prefix moved"
        );
    }
}
