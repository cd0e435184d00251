//! Where a repository lives: a local directory, or a bucket (and prefix) of an S3-compatible
//! object store, named by a path or a URL.

use std::{fmt, path::PathBuf};

use crate::{Error, Result};

/// Where a repository lives.
///
/// Parsed from what an operator types (`-d`/`BACKUP_DIR`): a path, a `file://` URL, or
/// `s3://bucket/prefix?endpoint=…&region=…`. Credentials are never part of it (see
/// [`S3Settings`]).
///
/// # Examples
///
/// ```
/// use backup::RepositoryLocation;
/// let local = RepositoryLocation::parse("data/backups").unwrap();
/// assert_eq!(local.to_string(), "data/backups");
///
/// let s3 = RepositoryLocation::parse("s3://hotel-backups/prod/db?endpoint=http://127.0.0.1:9000&region=eu-west-1").unwrap();
/// let RepositoryLocation::S3(bucket) = &s3 else { unreachable!() };
/// assert_eq!(bucket.bucket, "hotel-backups");
/// assert_eq!(bucket.prefix, "prod/db");
/// assert_eq!(bucket.region.as_deref(), Some("eu-west-1"));
/// assert!(RepositoryLocation::parse("s3://key:secret@bucket").is_err());
/// assert_eq!(RepositoryLocation::parse(&s3.to_url()).unwrap(), s3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RepositoryLocation {
    /// A directory on a local (or mounted) file system.
    Local(PathBuf),
    /// A bucket of an S3-compatible object store.
    S3(S3Location),
}

/// A bucket and key prefix of an S3-compatible object store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// The bucket.
    pub bucket: String,
    /// The key prefix every object of the repository has (no leading or trailing `/`; may be
    /// empty).
    pub prefix: String,
    /// The store's endpoint (`http://127.0.0.1:9000`); `None`: AWS itself, or the default of
    /// [`S3Settings`].
    pub endpoint: Option<String>,
    /// The region; `None`: the default of [`S3Settings`], else `us-east-1`.
    pub region: Option<String>,
}

impl RepositoryLocation {
    /// Parses a path, a `file://` URL or an `s3://` URL.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for another scheme, an `s3://` URL without a bucket or with
    /// credentials in it, or an unknown query parameter.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |why: &str| Error::InvalidConfig(format!("repository `{text}`: {why}"));
        if let Some(path) = text.strip_prefix("file://") {
            if path.is_empty() {
                return Err(invalid("no path after file://"));
            }
            return Ok(Self::Local(PathBuf::from(path)));
        }
        if text.starts_with("s3://") {
            let url = url::Url::parse(text).map_err(|e| invalid(&e.to_string()))?;
            if !url.username().is_empty() || url.password().is_some() {
                return Err(invalid(
                    "credentials do not belong in the URL; use the AWS_ACCESS_KEY_ID and \
                     AWS_SECRET_ACCESS_KEY environment variables",
                ));
            }
            let bucket = url.host_str().unwrap_or_default().to_owned();
            if bucket.is_empty() {
                return Err(invalid("no bucket (expected s3://bucket/prefix)"));
            }
            let prefix = url.path().trim_matches('/').to_owned();
            // The URL parser resolves `..`: look at what was typed.
            let typed = text
                .trim_start_matches("s3://")
                .split(['?', '#'])
                .next()
                .unwrap_or_default();
            if prefix
                .split('/')
                .any(|part| part.is_empty() && !prefix.is_empty())
                || typed.split('/').any(|part| part == "." || part == "..")
            {
                return Err(invalid("the prefix has an empty, `.` or `..` part"));
            }
            let mut location = S3Location {
                bucket,
                prefix,
                endpoint: None,
                region: None,
            };
            for (key, value) in url.query_pairs() {
                match key.as_ref() {
                    "endpoint" => {
                        location.endpoint = Some(check_endpoint(&value).map_err(|e| invalid(&e))?)
                    }
                    "region" => {
                        location.region = Some(check_region(&value).map_err(|e| invalid(&e))?)
                    }
                    other => {
                        return Err(invalid(&format!(
                            "unknown parameter `{other}` (expected endpoint or region)"
                        )));
                    }
                }
            }
            return Ok(Self::S3(location));
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(invalid(&format!(
                "unsupported scheme `{scheme}` (expected a path, file:// or s3://)"
            )));
        }
        if text.is_empty() {
            return Err(invalid("empty"));
        }
        Ok(Self::Local(PathBuf::from(text)))
    }

    /// The location as [`RepositoryLocation::parse`] reads it back (`Display` is for people):
    /// what a command line another program runs (PostgreSQL's `restore_command`) is given.
    /// A relative local path stays relative.
    pub fn to_url(&self) -> String {
        match self {
            Self::Local(dir) => dir.display().to_string(),
            Self::S3(s3) => {
                let mut url = format!("s3://{}", s3.bucket);
                if !s3.prefix.is_empty() {
                    url.push('/');
                    url.push_str(&s3.prefix);
                }
                // Written out, not percent-encoded: `%` means something to PostgreSQL's
                // restore_command. An endpoint is a URL, whose characters a query may hold.
                let params: Vec<String> = [("endpoint", &s3.endpoint), ("region", &s3.region)]
                    .into_iter()
                    .filter_map(|(name, value)| Some(format!("{name}={}", value.as_ref()?)))
                    .collect();
                if !params.is_empty() {
                    url.push('?');
                    url.push_str(&params.join("&"));
                }
                url
            }
        }
    }

    /// The local directory, for a local repository.
    pub fn local_dir(&self) -> Option<&std::path::Path> {
        match self {
            Self::Local(dir) => Some(dir),
            Self::S3(_) => None,
        }
    }
}

impl From<PathBuf> for RepositoryLocation {
    fn from(dir: PathBuf) -> Self {
        Self::Local(dir)
    }
}

impl From<&std::path::Path> for RepositoryLocation {
    fn from(dir: &std::path::Path) -> Self {
        Self::Local(dir.to_path_buf())
    }
}

impl From<&PathBuf> for RepositoryLocation {
    fn from(dir: &PathBuf) -> Self {
        Self::Local(dir.clone())
    }
}

impl fmt::Display for RepositoryLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(dir) => write!(f, "{}", dir.display()),
            Self::S3(s3) => write!(f, "{s3}"),
        }
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}", self.bucket)?;
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        if let Some(endpoint) = &self.endpoint {
            write!(f, " at {endpoint}")?;
        }
        Ok(())
    }
}

/// How to reach an S3-compatible store: credentials and the defaults for what a repository URL
/// leaves out. The library never reads the environment: a program builds this with
/// [`S3Settings::from_lookup`], typically from its environment variables.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    /// The access key id; `None` with `secret_access_key` `None`: unsigned requests.
    pub access_key_id: Option<String>,
    /// The secret access key.
    pub secret_access_key: Option<String>,
    /// A session token (temporary credentials).
    pub session_token: Option<String>,
    /// The region when the URL names none (`AWS_REGION`, then `AWS_DEFAULT_REGION`).
    pub default_region: Option<String>,
    /// The endpoint when the URL names none (`AWS_ENDPOINT_URL`).
    pub default_endpoint: Option<String>,
}

impl S3Settings {
    /// Reads the standard AWS variables through `lookup` (e.g.
    /// `|name| std::env::var(name).ok()`): `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, `AWS_REGION` / `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`.
    ///
    /// ```
    /// let settings = backup::S3Settings::from_lookup(|name| match name {
    ///     "AWS_ACCESS_KEY_ID" => Some("AKIA".to_owned()),
    ///     "AWS_SECRET_ACCESS_KEY" => Some("s3cret".to_owned()),
    ///     "AWS_DEFAULT_REGION" => Some("eu-west-1".to_owned()),
    ///     _ => None,
    /// });
    /// assert_eq!(settings.default_region.as_deref(), Some("eu-west-1"));
    /// assert!(!format!("{settings:?}").contains("s3cret"));
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let non_empty = |name: &str| lookup(name).filter(|v| !v.is_empty());
        Self {
            access_key_id: non_empty("AWS_ACCESS_KEY_ID"),
            secret_access_key: non_empty("AWS_SECRET_ACCESS_KEY"),
            session_token: non_empty("AWS_SESSION_TOKEN"),
            default_region: non_empty("AWS_REGION").or_else(|| non_empty("AWS_DEFAULT_REGION")),
            default_endpoint: non_empty("AWS_ENDPOINT_URL"),
        }
    }
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "***");
        f.debug_struct("S3Settings")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &hidden(&self.secret_access_key))
            .field("session_token", &hidden(&self.session_token))
            .field("default_region", &self.default_region)
            .field("default_endpoint", &self.default_endpoint)
            .finish()
    }
}

/// An S3 endpoint the HTTP client can use: an `http://` or `https://` URL with a host. (The
/// client would panic on anything else when it signs a request.)
pub(crate) fn check_endpoint(endpoint: &str) -> std::result::Result<String, String> {
    match url::Url::parse(endpoint) {
        Ok(url)
            if matches!(url.scheme(), "http" | "https")
                && url.host_str().is_some_and(|h| !h.is_empty()) =>
        {
            Ok(endpoint.to_owned())
        }
        _ => Err(format!(
            "the endpoint `{endpoint}` is not an http:// or https:// URL with a host"
        )),
    }
}

/// An S3 region name: letters, digits and dashes (it becomes part of a host name).
pub(crate) fn check_region(region: &str) -> std::result::Result<String, String> {
    if !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        Ok(region.to_owned())
    } else {
        Err(format!(
            "the region `{region}` is not a region name (letters, digits and dashes)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_urls() {
        assert_eq!(
            RepositoryLocation::parse("/srv/backups").unwrap(),
            RepositoryLocation::Local("/srv/backups".into())
        );
        assert_eq!(
            RepositoryLocation::parse("file:///srv/backups").unwrap(),
            RepositoryLocation::Local("/srv/backups".into())
        );
        let RepositoryLocation::S3(s3) = RepositoryLocation::parse("s3://b/").unwrap() else {
            panic!("not s3")
        };
        assert_eq!((s3.bucket.as_str(), s3.prefix.as_str()), ("b", ""));
        assert_eq!(s3.to_string(), "s3://b");
        for bad in [
            "s3://",
            "s3:///prefix",
            "s3://b/a//c",
            "s3://b/../x",
            "s3://b/p?endpont=x",
            "s3://b/p?endpoint=%zz",
            "s3://b/p?endpoint=ftp://h",
            "s3://b/p?endpoint=http://",
            "s3://b/p?region=",
            "s3://b/p?region=eu%2Fwest",
            "gs://b/p",
            "",
        ] {
            assert!(RepositoryLocation::parse(bad).is_err(), "{bad}");
        }
    }
}
