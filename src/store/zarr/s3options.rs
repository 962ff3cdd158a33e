//! Explicit configuration of the S3 client (feature `s3`): what a caller
//! passes instead of, or on top of, the `AWS_*` environment variables.

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};

/// How to reach and authenticate with an S3-compatible server, for arrays
/// at `s3://` URLs (feature `s3`). Every option left unset comes from the
/// environment as before (`AWS_ENDPOINT_URL`, `AWS_REGION`,
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
/// `AWS_ALLOW_HTTP`, `docs/s3.md`); an option that is set wins over its
/// variable. The credentials go together: a key id and secret given here
/// replace the environment's key id, secret *and* session token (a token
/// from the environment belongs to the environment's key).
///
/// ```
/// use chunkyard::{OpenOptions, S3Options};
/// let s3 = S3Options::new()
///     .endpoint("http://127.0.0.1:9000")
///     .allow_http(true)
///     .credentials("AKIA...", "secret");
/// let opts = OpenOptions::new().read_only(true).s3(s3);
/// # let _ = opts;
/// ```
///
/// The same options by name ([`set`](Self::set)), as the command line's
/// `--s3-option KEY=VALUE` and Python's `storage_options={...}` give them
/// (fsspec's / s3fs's names): see [`S3Options::KEYS`].
///
/// `Debug` shows whether a secret or token is set, never its value.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct S3Options {
    /// The server (`http://127.0.0.1:9000`); requests are then path-style.
    pub(crate) endpoint: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) access_key_id: Option<String>,
    pub(crate) secret_access_key: Option<String>,
    pub(crate) session_token: Option<String>,
    pub(crate) allow_http: Option<bool>,
    /// Each request's deadline (object_store's default: 30 s).
    pub(crate) timeout: Option<Duration>,
    /// Retries of a failed request (chunkyard's default: 6).
    pub(crate) retries: Option<usize>,
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |s: &Option<String>| s.as_ref().map(|_| "<hidden>");
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &hidden(&self.secret_access_key))
            .field("session_token", &hidden(&self.session_token))
            .field("allow_http", &self.allow_http)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .finish()
    }
}

impl S3Options {
    /// The names [`set`](Self::set) takes, fsspec's (s3fs) where it has
    /// one: `endpoint_url`, `region`, `key` (access key id), `secret`
    /// (secret access key), `token` (session token), `allow_http`
    /// (`true`/`false`), `timeout` (seconds per request, may be
    /// fractional), `retries` (retries of a failed request).
    pub const KEYS: [&'static str; 8] = [
        "endpoint_url",
        "region",
        "key",
        "secret",
        "token",
        "allow_http",
        "timeout",
        "retries",
    ];

    /// No option set: everything from the environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// The server's URL, like `http://127.0.0.1:9000` (`AWS_ENDPOINT_URL`);
    /// requests to it are path-style (`endpoint/bucket/key`).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// The region (`AWS_REGION`; default `us-east-1`).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// The access key id and secret access key (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`); they replace the environment's
    /// credentials, session token included.
    pub fn credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        self.access_key_id = Some(access_key_id.into());
        self.secret_access_key = Some(secret.into());
        self
    }

    /// The session token of temporary credentials (`AWS_SESSION_TOKEN`),
    /// with [`credentials`](Self::credentials).
    pub fn session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(token.into());
        self
    }

    /// Whether a plain `http://` endpoint is allowed (`AWS_ALLOW_HTTP`);
    /// without it such an endpoint is refused before any request.
    pub fn allow_http(mut self, yes: bool) -> Self {
        self.allow_http = Some(yes);
        self
    }

    /// Each request's deadline (default 30 s); a request past it fails and
    /// is retried like a lost connection.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How many times a failed request (5xx, 429, 408, lost connection,
    /// timeout) is retried (default 6).
    pub fn retries(mut self, n: usize) -> Self {
        self.retries = Some(n);
        self
    }

    /// Whether no option is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Sets the option named `key` (one of [`KEYS`](Self::KEYS)) from its
    /// text. An unknown key or a value that does not parse is
    /// [`Error::InvalidArgument`] naming the valid keys or the value.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let bad = |what: &str| Error::invalid(format!("S3 option {key}={value:?}: {what}"));
        let text = || Some(value.to_string());
        match key {
            "endpoint_url" => self.endpoint = text(),
            "region" => self.region = text(),
            "key" => self.access_key_id = text(),
            "secret" => self.secret_access_key = text(),
            "token" => self.session_token = text(),
            "allow_http" => {
                self.allow_http = Some(match value.to_ascii_lowercase().as_str() {
                    "1" | "true" | "yes" | "on" => true,
                    "0" | "false" | "no" | "off" => false,
                    _ => return Err(bad("expected true or false")),
                });
            }
            "timeout" => {
                let secs: f64 = value
                    .parse()
                    .map_err(|_| bad("expected seconds, like 30 or 2.5"))?;
                if !(secs.is_finite() && secs > 0.0 && secs < 1e9) {
                    return Err(bad("expected a positive number of seconds"));
                }
                self.timeout = Some(Duration::from_secs_f64(secs));
            }
            "retries" => {
                let n: usize = value.parse().map_err(|_| bad("expected a count, like 6"))?;
                if n > 100 {
                    return Err(bad("at most 100"));
                }
                self.retries = Some(n);
            }
            _ => {
                return Err(Error::invalid(format!(
                    "unknown S3 option {key:?}; the options are {}",
                    Self::KEYS.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// Options from `KEY=VALUE` pairs (the command line's
    /// `--s3-option`), later pairs winning.
    pub fn from_pairs<S: AsRef<str>>(pairs: impl IntoIterator<Item = S>) -> Result<Self> {
        let mut opts = Self::new();
        for pair in pairs {
            let pair = pair.as_ref();
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                Error::invalid(format!(
                    "S3 option {pair:?}: expected KEY=VALUE, KEY one of {}",
                    Self::KEYS.join(", ")
                ))
            })?;
            opts.set(k.trim(), v)?;
        }
        Ok(opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_by_name_and_bad_ones_are_refused() {
        let o = S3Options::from_pairs([
            "endpoint_url=http://h:1",
            "region=eu-west-1",
            "key=K",
            "secret=S",
            "token=T",
            "allow_http=yes",
            "timeout=2.5",
            "retries=3",
        ])
        .unwrap();
        assert_eq!(
            o,
            S3Options::new()
                .endpoint("http://h:1")
                .region("eu-west-1")
                .credentials("K", "S")
                .session_token("T")
                .allow_http(true)
                .timeout(Duration::from_millis(2500))
                .retries(3)
        );
        let shown = format!("{o:?}");
        assert!(
            !shown.contains("\"S\"") && !shown.contains("\"T\""),
            "{shown}"
        );
        let e = S3Options::from_pairs(["endpoint=http://h"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown S3 option \"endpoint\"") && e.contains("endpoint_url"),
            "{e}"
        );
        for bad in [
            "allow_http=maybe",
            "timeout=-1",
            "timeout=x",
            "retries=-2",
            "novalue",
        ] {
            assert!(S3Options::from_pairs([bad]).is_err(), "{bad}");
        }
        assert!(S3Options::new().is_empty() && !o.is_empty());
    }
}
