//! A repository in an S3-compatible object store, through the `object_store` crate.
//!
//! Requests are signed with the credentials of [`S3Settings`] (unsigned without them), go to
//! the URL's endpoint with path-style addressing when one is given (MinIO, moto, Ceph, R2),
//! and are retried by the client on transient failures. Objects are written with
//! `If-None-Match: *`, so an existing object is never replaced.

use std::{sync::Arc, time::Duration};

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
    client: Arc<dyn ObjectStore>,
    location: S3Location,
}

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
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&location.bucket)
            .with_region(region)
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(60)),
            )
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(15),
                ..RetryConfig::default()
            });
        if let Some(endpoint) = &endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
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
        let client = builder
            .build()
            .map_err(|e| Error::InvalidConfig(format!("{location}: {}", crate::error_chain(&e))))?;
        let mut location = location.clone();
        location.endpoint = endpoint;
        Ok(Self {
            client: Arc::new(client),
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
        match self
            .client
            .put_opts(&self.path(key), PutPayload::from(bytes.clone()), options)
            .await
        {
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
        match self.client.get(&self.path(key)).await {
            Ok(result) => result
                .bytes()
                .await
                .map(|b| Some(b.to_vec()))
                .map_err(|e| store_error("read", &describe, e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error("read", &describe, e)),
        }
    }

    pub(crate) async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        match self.client.head(&self.path(key)).await {
            Ok(meta) => Ok(Some(self.meta(meta))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error("inspect", &self.describe(key), e)),
        }
    }

    pub(crate) async fn list(&self, dir: &str) -> Result<Vec<ObjectMeta>> {
        let prefix = self.dir_path(dir);
        let found: Vec<object_store::ObjectMeta> = self
            .client
            .list(prefix.as_ref())
            .try_collect()
            .await
            .map_err(|e| store_error("list", &self.describe_dir(dir), e))?;
        Ok(found.into_iter().map(|m| self.meta(m)).collect())
    }

    pub(crate) async fn list_dir(&self, dir: &str) -> Result<DirListing> {
        let prefix = self.dir_path(dir);
        let found = self
            .client
            .list_with_delimiter(prefix.as_ref())
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
        match self.client.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error("delete", &self.describe(key), e)),
        }
    }

    pub(crate) async fn upload(&self, key: &str) -> Result<(ObjectWriter, PendingUpload)> {
        let describe = self.describe(key);
        let (writer, pending) =
            pipe::upload(Arc::clone(&self.client), self.path(key), describe.clone());
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
        match self.client.get(&self.path(key)).await {
            Ok(result) => Ok(Some(ObjectReader::S3(pipe::download(result, describe)))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error("read", &describe, e)),
        }
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
