//! The admin API of a running hotel-server, with errors that say what to do.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::cli::{AdminToken, ServerArgs};

/// An authenticated client of one server's admin routes (its `Debug` hides the token).
#[derive(Debug)]
pub(crate) struct AdminClient {
    http: reqwest::Client,
    base: Url,
    token: AdminToken,
}

impl AdminClient {
    /// Checks the URL and the token's presence; nothing is sent yet.
    pub(crate) fn new(args: &ServerArgs) -> anyhow::Result<Self> {
        let base =
            Url::parse(&args.url).with_context(|| format!("while reading --url {:?}", args.url))?;
        if base.scheme() != "http" {
            bail!(
                "--url {} is not an http:// URL (hotel-server speaks plain HTTP; put TLS in a proxy in front of it)",
                args.url
            );
        }
        let token: AdminToken = args
            .token
            .as_ref()
            .map(|t| t.expose().trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                anyhow!(
                    "no administrator token: pass --token or set HOTEL_ADMIN_TOKEN \
                     (create one with `hotel-server token create --email E --role admin`)"
                )
            })?
            .parse()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(args.timeout.max(1)))
            .connect_timeout(Duration::from_secs(args.timeout.clamp(1, 5)))
            .build()
            .context("while building the HTTP client")?;
        Ok(Self { http, base, token })
    }

    /// The server's base URL, for report titles.
    pub(crate) fn base(&self) -> &Url {
        &self.base
    }

    /// GETs `path` with the token and parses the JSON answer.
    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let url = self
            .base
            .join(path)
            .with_context(|| format!("while joining {path} to {}", self.base))?;
        tracing::debug!(%url, "GET");
        let response = self
            .http
            .get(url.clone())
            .bearer_auth(self.token.expose())
            .send()
            .await
            .with_context(|| format!("could not reach the server at {}", self.base))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .with_context(|| format!("while reading the answer of {url}"))?;
        if !status.is_success() {
            let message = error_message(&body);
            bail!(match status {
                StatusCode::UNAUTHORIZED => format!(
                    "the server at {} refused the token ({status}: {message}); pass an \
                     administrator token with --token or HOTEL_ADMIN_TOKEN",
                    self.base
                ),
                StatusCode::FORBIDDEN => format!(
                    "the token is not an administrator's ({status}: {message}); create one with \
                     `hotel-server token create --email E --role admin`"
                ),
                StatusCode::NOT_FOUND =>
                    format!("{url} answered {status}: is {} a hotel-server?", self.base),
                _ => format!("{url} answered {status}: {message}"),
            });
        }
        serde_json::from_str(&body).with_context(|| {
            format!(
                "{url} answered something other than the expected JSON (is {} a hotel-server of this version?)",
                self.base
            )
        })
    }
}

/// The message of a hotel-server error body (`{"error": {"code", "message"}}`), or the start of
/// whatever else came back.
fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| crate::table::truncate(body.trim(), 200))
}

/// `value` with every object key turned from the API's camelCase into the snake_case of the
/// libraries' own report types (`p95Ms` → `p95_ms`), so an answer of the server's can be read
/// back into the type it was made from.
pub(crate) fn snake_case_keys(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| {
                    let mut snake = String::with_capacity(key.len() + 4);
                    for c in key.chars() {
                        if c.is_ascii_uppercase() {
                            snake.push('_');
                            snake.push(c.to_ascii_lowercase());
                        } else {
                            snake.push(c);
                        }
                    }
                    (snake, snake_case_keys(value))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(snake_case_keys).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: &str, token: Option<&str>) -> ServerArgs {
        ServerArgs {
            url: url.to_owned(),
            token: token.map(|t| t.parse().unwrap()),
            timeout: 5,
        }
    }

    #[test]
    fn a_missing_token_or_bad_url_is_refused_before_sending() {
        let missing = AdminClient::new(&args("http://127.0.0.1:3000", None)).unwrap_err();
        assert!(
            missing.to_string().contains("HOTEL_ADMIN_TOKEN"),
            "{missing}"
        );
        let blank = AdminClient::new(&args("http://127.0.0.1:3000", Some("  "))).unwrap_err();
        assert!(
            blank.to_string().contains("no administrator token"),
            "{blank}"
        );
        let https = AdminClient::new(&args("https://hotel.example", Some("t"))).unwrap_err();
        assert!(https.to_string().contains("not an http:// URL"), "{https}");
        let garbage = AdminClient::new(&args("not a url", Some("t"))).unwrap_err();
        assert!(format!("{garbage:#}").contains("--url"), "{garbage:#}");
    }

    #[test]
    fn error_bodies_give_their_message() {
        assert_eq!(
            error_message(
                r#"{"error":{"code":"unauthorized","message":"unknown or revoked token"}}"#
            ),
            "unknown or revoked token"
        );
        assert_eq!(error_message("  Bad Gateway \n"), "Bad Gateway");
    }

    #[test]
    fn camel_case_keys_become_snake_case_at_every_depth() {
        let api = serde_json::json!({"slowThresholdMs": 100.0, "nPlusOne": [{"fingerprintId": "ab", "p95Ms": 1}], "calls": 2});
        assert_eq!(
            snake_case_keys(api),
            serde_json::json!({"slow_threshold_ms": 100.0, "n_plus_one": [{"fingerprint_id": "ab", "p95_ms": 1}], "calls": 2})
        );
    }
}
