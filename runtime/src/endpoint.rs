//! What codegen reads from a spec about its token endpoint
//! ([`ProviderSpec`]), the trait it implements for the generated client
//! ([`TokenEndpoint`]), and the one mapping of any provider's answer onto a
//! token ([`AnswerSpec::grant`]) and of its error body onto a refusal
//! ([`RefusalSpec::refusal`]): where each role lives is data in the spec,
//! never code per provider.

use std::future::Future;
use std::time::{Duration, SystemTime};

use progenitor_client::{Error, ResponseValue};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::ResponseGuard;

/// One provider's token endpoint as its spec describes it. Codegen writes one
/// `static SPEC` per generated crate; nothing in it is written by hand.
#[derive(Debug)]
pub struct ProviderSpec {
    /// The provider id: the spec's file name (`pyng-billing`).
    pub id: &'static str,
    /// The provider's name for people (`info.x-paytokens-provider`).
    pub name: &'static str,
    /// The spec file, relative to the workspace (`specs/pyng-billing.yaml`).
    pub spec_file: &'static str,
    /// The spec's `servers`.
    pub servers: &'static [Server],
    /// The one server with neither `x-paytokens-environment` nor
    /// `x-paytokens-example-host`: the host used when none is configured.
    pub default_base_url: Option<&'static str>,
    /// The operation's HTTP method, upper case (`POST`, `GET`).
    pub method: &'static str,
    /// The operation's path, appended to the base URL.
    pub path: &'static str,
    /// The request body's media type; `None` when the request has no body.
    pub content_type: Option<&'static str>,
    /// Where the client credentials go.
    pub auth: Auth,
    /// The operation's header and query parameters, in the order
    /// [`TokenEndpoint::send`] takes their values.
    pub params: &'static [Param],
    /// The header parameters whose values the user gives (Singapay's
    /// `X-PARTNER-ID`): a subset of `params`, for configuration and the CLI.
    pub headers: &'static [HeaderParam],
    /// Where the requested scopes go; `None` when the endpoint takes none.
    pub scope: Option<ScopeField>,
    /// Request body properties with one allowed value (`grant_type`).
    pub constants: &'static [(&'static str, &'static str)],
    /// Where the token, its type, lifetime and scopes are in a success body.
    pub answer: AnswerSpec,
    /// Where the code and message are in an error body.
    pub refusal: RefusalSpec,
    /// The spec's `document` examples, as JSON text.
    pub examples: Examples,
    /// The sandbox's clients (`x-paytokens-sandbox`).
    pub sandbox_clients: &'static [SandboxClientSpec],
}

impl ProviderSpec {
    /// The server of environment `name` (`x-paytokens-environment`).
    pub fn environment(&self, name: &str) -> Option<&'static Server> {
        self.servers
            .iter()
            .find(|server| server.environment == Some(name))
    }

    /// The environments the spec names, in its order.
    pub fn environments(&self) -> impl Iterator<Item = &'static str> + use<> {
        self.servers.iter().filter_map(|server| server.environment)
    }
}

/// One of the spec's `servers`.
#[derive(Debug)]
pub struct Server {
    /// Its URL, without a trailing slash.
    pub url: &'static str,
    /// `x-paytokens-environment`: the name it is selected by (`sandbox`).
    pub environment: Option<&'static str>,
    /// `x-paytokens-example-host: true`: only the document's example host.
    pub example_host: bool,
}

/// Where a provider expects the client id and secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Basic base64(id:secret)` (an `http`/`basic` scheme).
    Basic,
    /// Where the spec's `x-paytokens-role: client_id` and `client_secret`
    /// are (the operation has `security: []`).
    Fields {
        /// The client id's place.
        client_id: Place,
        /// The client secret's place.
        client_secret: Place,
    },
}

/// A named place in the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// A request body property.
    Body(&'static str),
    /// A header parameter.
    Header(&'static str),
    /// A query parameter.
    Query(&'static str),
}

impl Place {
    /// The property or parameter name.
    pub fn name(self) -> &'static str {
        match self {
            Place::Body(name) | Place::Header(name) | Place::Query(name) => name,
        }
    }
}

/// A header or query parameter of the operation, and what fills it.
#[derive(Debug)]
pub struct Param {
    /// Its name as the spec writes it.
    pub name: &'static str,
    /// `true` for a header, `false` for a query parameter.
    pub header: bool,
    /// What its value is.
    pub value: ParamValue,
}

/// What fills a parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamValue {
    /// The client id (`x-paytokens-role: client_id`).
    ClientId,
    /// The client secret (`x-paytokens-role: client_secret`).
    ClientSecret,
    /// The requested scopes, joined (`x-paytokens-role: scopes`).
    Scopes,
    /// Its one allowed value.
    Constant(&'static str),
    /// A value the user gives: the [`HeaderParam`] of this name.
    User,
}

/// A header the user gives a value for (Singapay's `X-PARTNER-ID`).
#[derive(Debug)]
pub struct HeaderParam {
    /// The header name as the spec writes it.
    pub name: &'static str,
    /// The spec's description.
    pub description: &'static str,
    /// Whether the request must carry it.
    pub required: bool,
    /// The spec's example value.
    pub example: Option<&'static str>,
}

/// Where the requested scopes go.
#[derive(Debug)]
pub struct ScopeField {
    /// The property or parameter carrying them.
    pub place: Place,
    /// How several are written.
    pub join: ScopeJoin,
    /// Whether the request must carry at least one scope.
    pub required: bool,
    /// The scopes the spec's oauth2 scheme declares; `None` when it declares
    /// none (partner-defined scopes).
    pub declared: Option<&'static [&'static str]>,
}

/// How scopes are written in a request or an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScopeJoin {
    /// One string, separated by spaces (RFC 6749).
    Space,
    /// One string, separated by commas.
    Comma,
    /// A JSON array of strings.
    Array,
}

impl ScopeJoin {
    /// `scopes` as this shape.
    pub fn to_json(self, scopes: &[String]) -> Value {
        match self {
            ScopeJoin::Space => Value::from(scopes.join(" ")),
            ScopeJoin::Comma => Value::from(scopes.join(",")),
            ScopeJoin::Array => Value::from(scopes.to_vec()),
        }
    }

    /// `scopes` as one string (for a header or query parameter).
    pub fn to_text(self, scopes: &[String]) -> String {
        match self {
            ScopeJoin::Comma => scopes.join(","),
            ScopeJoin::Space | ScopeJoin::Array => scopes.join(" "),
        }
    }
}

/// A member of a JSON body, by its path from the root (`data.access_token`).
#[derive(Debug)]
pub struct Field {
    /// The property names from the root.
    pub path: &'static [&'static str],
    /// The path joined with dots, for messages.
    pub name: &'static str,
}

impl Field {
    /// The member, when present and not null.
    pub fn get<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        let found = self
            .path
            .iter()
            .try_fold(value, |value, name| value.as_object()?.get(*name))?;
        (!found.is_null()).then_some(found)
    }

    /// Sets the member, creating the objects on the way.
    pub fn set(&self, value: &mut Value, new: Value) {
        let mut at = value;
        for name in self.path {
            if !at.is_object() {
                *at = Value::Object(serde_json::Map::new());
            }
            // An object: made one just above.
            let Value::Object(members) = at else {
                return;
            };
            at = members.entry(*name).or_insert(Value::Null);
        }
        *at = new;
    }
}

/// How a success body's lifetime is written.
#[derive(Debug)]
pub enum Expiry {
    /// Seconds from when the request was sent (`expires_in`): an integer or
    /// a string of digits.
    In(Field),
    /// An absolute time (`expires_at`).
    At(Field, TimeFormat),
}

/// How an absolute time is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeFormat {
    /// `type: string, format: date-time`: RFC 3339, and the ISO 8601
    /// offsets without a colon (`+0000`).
    DateTime,
    /// `type: integer`: seconds since the Unix epoch.
    UnixSeconds,
}

/// A condition a success body must meet (`x-paytokens-expect`).
#[derive(Debug)]
pub enum Expect {
    /// The member equals this JSON value (as JSON text, e.g. `true`).
    Value(&'static str),
    /// The member equals the response's HTTP status.
    HttpStatus,
}

/// Where the roles of a success body are.
#[derive(Debug)]
pub struct AnswerSpec {
    /// The statuses that carry a token (200, 201), in the spec's order.
    pub statuses: &'static [u16],
    /// The token (`x-paytokens-role: access_token`).
    pub token: Field,
    /// The token type, when the answer has one.
    pub token_type: Option<Field>,
    /// The documented token type when the answer has none
    /// (`x-paytokens-default-token-type`).
    pub default_token_type: Option<&'static str>,
    /// The lifetime.
    pub expiry: Expiry,
    /// The granted scopes, when the answer reports them.
    pub scopes: Option<Field>,
    /// Conditions an envelope puts on success (Singapay's `success: true`).
    pub expect: &'static [(Field, Expect)],
}

/// `expires_in` or `expires_at` as the provider sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lifetime {
    /// Relative seconds, a JSON integer.
    Seconds(i64),
    /// Relative seconds as a JSON string (`"3600"`), to be parsed strictly.
    Text(String),
    /// An absolute time, to be judged against when the request was sent.
    Until(SystemTime),
}

/// The parts of a success body that make an access token. `Debug` never
/// shows the token.
pub struct Grant {
    /// The token (secret: never print it).
    pub access_token: String,
    /// The token type, e.g. `Bearer`, or the documented default.
    pub token_type: String,
    /// The lifetime.
    pub lifetime: Lifetime,
    /// The granted scopes, when reported.
    pub scopes: Option<Vec<String>>,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("access_token", &"[REDACTED]")
            .field("token_type", &self.token_type)
            .field("lifetime", &self.lifetime)
            .field("scopes", &self.scopes)
            .finish()
    }
}

impl AnswerSpec {
    /// The token's parts in a success body (as JSON) received with HTTP
    /// `status`, or what is wrong: messages name fields by their path and
    /// never quote a value.
    pub fn grant(&self, body: &Value, status: u16) -> Result<Grant, String> {
        for (field, expect) in self.expect {
            let found = field.get(body);
            let ok = match expect {
                Expect::Value(text) => found == serde_json::from_str::<Value>(text).ok().as_ref(),
                Expect::HttpStatus => found.and_then(Value::as_u64) == Some(u64::from(status)),
            };
            if !ok {
                let wanted = match expect {
                    Expect::Value(text) => format!("`{text}`"),
                    Expect::HttpStatus => format!("the HTTP status ({status})"),
                };
                return Err(match found {
                    None => format!("`{}` is missing", field.name),
                    Some(_) => format!("`{}` is not {wanted}", field.name),
                });
            }
        }
        let text = |field: &Field| -> Result<String, String> {
            match field.get(body) {
                Some(Value::String(text)) => Ok(text.clone()),
                Some(_) => Err(format!("`{}` is not a string", field.name)),
                None => Err(format!("`{}` is missing", field.name)),
            }
        };
        let access_token = text(&self.token)?;
        let token_type = match (&self.token_type, self.default_token_type) {
            (Some(field), default) => match (field.get(body), default) {
                (None, Some(default)) => default.to_owned(),
                _ => text(field)?,
            },
            (None, Some(default)) => default.to_owned(),
            (None, None) => return Err("the spec names no token type".to_owned()),
        };
        let lifetime = match &self.expiry {
            Expiry::In(field) => match field.get(body) {
                Some(Value::Number(n)) => Lifetime::Seconds(
                    n.as_i64()
                        .ok_or_else(|| format!("`{}` is not a whole number", field.name))?,
                ),
                Some(Value::String(text)) => Lifetime::Text(text.clone()),
                Some(_) => return Err(format!("`{}` is not a number", field.name)),
                None => return Err(format!("`{}` is missing", field.name)),
            },
            Expiry::At(field, format) => {
                let found = field.get(body);
                let at = match (format, found) {
                    (TimeFormat::DateTime, Some(Value::String(text))) => parse_time(text),
                    (TimeFormat::UnixSeconds, Some(Value::Number(n))) => n
                        .as_u64()
                        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s)),
                    (_, None) => return Err(format!("`{}` is missing", field.name)),
                    _ => None,
                };
                let what = match format {
                    TimeFormat::DateTime => "an RFC 3339 time",
                    TimeFormat::UnixSeconds => "Unix seconds",
                };
                Lifetime::Until(at.ok_or_else(|| format!("`{}` is not {what}", field.name))?)
            }
        };
        let scopes = match &self.scopes {
            None => None,
            Some(field) => match field.get(body) {
                None => None,
                Some(Value::String(text)) => Some(
                    text.split([' ', ','])
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                ),
                Some(Value::Array(items)) => Some(
                    items
                        .iter()
                        .map(|item| item.as_str().map(str::to_owned))
                        .collect::<Option<_>>()
                        .ok_or_else(|| {
                            format!("`{}` has a scope that is not a string", field.name)
                        })?,
                ),
                Some(_) => return Err(format!("`{}` is neither a string nor a list", field.name)),
            },
        };
        Ok(Grant {
            access_token,
            token_type,
            lifetime,
            scopes,
        })
    }
}

/// An RFC 3339 time, also with an ISO 8601 offset without a colon
/// (`2026-05-12T00:00:00+0000`, as Airwallex writes it).
pub fn parse_time(text: &str) -> Option<SystemTime> {
    let at: jiff::Timestamp = text.parse().ok()?;
    Some(SystemTime::from(at))
}

/// `at` as an RFC 3339 time in UTC (`2026-05-12T00:00:00Z`).
pub fn format_time(at: SystemTime) -> String {
    jiff::Timestamp::try_from(at)
        .map(|at| at.to_string())
        .unwrap_or_default()
}

/// Where the code and message are in an error body.
#[derive(Debug)]
pub struct RefusalSpec {
    /// `x-paytokens-role: error_code`.
    pub code: Option<Field>,
    /// `x-paytokens-role: error_message`.
    pub message: Option<Field>,
    /// The smallest error body the spec's schema allows, as JSON text (its
    /// required members, each the smallest of its type; integers 400): what
    /// a refusal is built on where the document shows no error example.
    pub smallest: &'static str,
}

impl RefusalSpec {
    /// The code and message an error body (as JSON) carries.
    pub fn refusal(&self, body: &Value) -> Refusal {
        let text = |field: &Option<Field>| match field.as_ref()?.get(body)? {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        };
        Refusal {
            code: text(&self.code),
            message: text(&self.message),
        }
    }
}

/// What a provider's error body said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Refusal {
    /// The provider's error code (`invalid_client`).
    pub code: Option<String>,
    /// The provider's message.
    pub message: Option<String>,
}

/// The spec's `document` examples of the operation, as JSON text.
#[derive(Debug)]
pub struct Examples {
    /// The request body.
    pub request: Option<&'static str>,
    /// The success body.
    pub success: Option<&'static str>,
    /// The error (`4XX`) body.
    pub refusal: Option<&'static str>,
}

/// A client the sandbox accepts, declared in the spec's
/// `x-paytokens-sandbox` extension (the documents' example credentials).
/// `Debug` leaves the secret out.
pub struct SandboxClientSpec {
    /// The client id.
    pub client_id: &'static str,
    /// The client secret.
    pub client_secret: &'static str,
    /// Header parameter values the client must send.
    pub headers: &'static [(&'static str, &'static str)],
    /// Scopes granted (all declared ones when the spec says `all`).
    pub scopes: &'static [&'static str],
    /// Lifetime of its tokens, in seconds.
    pub lifetime: u64,
}

impl std::fmt::Debug for SandboxClientSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxClientSpec")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[REDACTED]")
            .field("headers", &self.headers)
            .field("scopes", &self.scopes)
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

/// A generated client of one token endpoint. Codegen implements it for
/// every generated `Client`.
pub trait TokenEndpoint: Sized + Send + Sync + 'static {
    /// What codegen read from the spec.
    const SPEC: &'static ProviderSpec;
    /// The request body (`()` when the request has none).
    type Request: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// The success body.
    type Success: Serialize + DeserializeOwned + Send + 'static;
    /// The error (`4XX`) body.
    type Refusal: Serialize + DeserializeOwned + Send + 'static;

    /// A client of `base_url` over `http`; read `guard` after one call.
    fn with_guard(base_url: &str, http: reqwest::Client, guard: ResponseGuard) -> Self;

    /// The guard given to [`with_guard`](Self::with_guard).
    fn guard(&self) -> &ResponseGuard;

    /// Requests a token; `params` holds the values of
    /// [`ProviderSpec::params`], in that order (an empty value leaves an
    /// optional parameter out).
    fn send<'a>(
        &'a self,
        request: &'a Self::Request,
        params: &'a [&'a str],
    ) -> impl Future<Output = Result<ResponseValue<Self::Success>, Error<Self::Refusal>>> + Send + 'a;
}

#[cfg(test)]
mod tests {
    use super::*;

    static TOKEN: Field = Field {
        path: &["result", "value"],
        name: "result.value",
    };
    static UNTIL: Field = Field {
        path: &["result", "until"],
        name: "result.until",
    };
    static SCOPES: Field = Field {
        path: &["result", "scopes"],
        name: "result.scopes",
    };

    fn answer(expiry: Expiry) -> AnswerSpec {
        AnswerSpec {
            statuses: &[200],
            token: Field {
                path: TOKEN.path,
                name: TOKEN.name,
            },
            token_type: None,
            default_token_type: Some("Bearer"),
            expiry,
            scopes: Some(Field {
                path: SCOPES.path,
                name: SCOPES.name,
            }),
            expect: &[],
        }
    }

    #[test]
    fn scopes_are_joined_as_the_spec_says() {
        let scopes = ["a".to_owned(), "b".to_owned()];
        assert_eq!(ScopeJoin::Space.to_json(&scopes), Value::from("a b"));
        assert_eq!(ScopeJoin::Comma.to_json(&scopes), Value::from("a,b"));
        assert_eq!(
            ScopeJoin::Array.to_json(&scopes),
            serde_json::json!(["a", "b"])
        );
        assert_eq!(ScopeJoin::Comma.to_text(&scopes), "a,b");
    }

    #[test]
    fn a_nested_answer_with_unix_expiry_and_array_scopes_is_a_grant() {
        let spec = answer(Expiry::At(
            Field {
                path: UNTIL.path,
                name: UNTIL.name,
            },
            TimeFormat::UnixSeconds,
        ));
        let body = serde_json::json!({
            "result": {"value": "t", "until": 1_800_000_000u64, "scopes": ["x", "y"]}
        });
        let grant = spec.grant(&body, 200).unwrap();
        assert_eq!(grant.access_token, "t");
        assert_eq!(grant.token_type, "Bearer");
        assert_eq!(
            grant.lifetime,
            Lifetime::Until(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
        );
        assert_eq!(grant.scopes, Some(vec!["x".to_owned(), "y".to_owned()]));
        let missing = spec
            .grant(&serde_json::json!({"result": {}}), 200)
            .unwrap_err();
        assert_eq!(missing, "`result.value` is missing");
    }

    #[test]
    fn iso_offsets_without_a_colon_are_parsed() {
        let colon = parse_time("2026-05-12T00:00:00+00:00").unwrap();
        assert_eq!(parse_time("2026-05-12T00:00:00+0000"), Some(colon));
        assert_eq!(parse_time("2026-05-12T00:00:00Z"), Some(colon));
        assert_eq!(parse_time("2026-05-12T00:00:00"), None);
        assert_eq!(format_time(colon), "2026-05-12T00:00:00Z");
    }

    #[test]
    fn an_envelope_condition_is_checked_before_the_token() {
        static EXPECT: &[(Field, Expect)] = &[(
            Field {
                path: &["ok"],
                name: "ok",
            },
            Expect::Value("true"),
        )];
        let mut spec = answer(Expiry::In(Field {
            path: &["result", "in"],
            name: "result.in",
        }));
        spec.expect = EXPECT;
        let body = serde_json::json!({"ok": false, "result": {"value": "t", "in": 60}});
        assert_eq!(spec.grant(&body, 200).unwrap_err(), "`ok` is not `true`");
        let body = serde_json::json!({"ok": true, "result": {"value": "t", "in": "60"}});
        assert_eq!(
            spec.grant(&body, 200).unwrap().lifetime,
            Lifetime::Text("60".into())
        );
    }
}
