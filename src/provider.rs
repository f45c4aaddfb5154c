//! [`Provider`]: a payment provider paytokens knows, as its spec describes
//! it. The set is open: every provider registered in
//! [`crate::providers`] is one, with nothing about it written anywhere but
//! in its spec.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use paytokens_runtime::ProviderSpec;

use crate::providers::{REGISTRY, Registered, Registration};
use crate::{AnySource, Config, TokenError};

/// A payment provider whose token endpoint paytokens knows: a cheap,
/// copyable handle on what codegen read from its spec (id, name, default
/// host, route, where the credentials go, header parameters, scopes), and
/// on its generated client. Compared, hashed and ordered by id; `Display`
/// is the id.
///
/// The providers paytokens ships are [`Provider::all`]; a provider
/// generated in your own crate (`paytokens_codegen::Builder`) is
/// `Provider::of::<acme::Client>()`, and is as good as one of them
/// everywhere a `Provider` is taken.
#[derive(Clone, Copy)]
pub struct Provider(&'static Registration);

impl Provider {
    /// The provider of a generated client: `Provider::of::<Autopay>()`,
    /// `Provider::of::<acme::Client>()`.
    pub const fn of<C: paytokens_runtime::TokenEndpoint>() -> Self {
        Self(<C as Registered>::REGISTRATION)
    }

    /// Every provider paytokens ships, in the order of their spec files'
    /// names.
    pub fn all() -> impl ExactSizeIterator<Item = Provider> + Clone {
        REGISTRY.iter().copied()
    }

    /// The kebab-case id, e.g. `pyng-billing`: the spec's file name, the
    /// generated crate's prefix and the CLI's provider argument.
    pub fn id(self) -> &'static str {
        self.0.spec.id
    }

    /// The provider's product name, for people.
    pub fn name(self) -> &'static str {
        self.0.spec.name
    }

    /// Everything the spec says about the token endpoint.
    pub fn spec(self) -> &'static ProviderSpec {
        self.0.spec
    }

    /// A source of tokens from this provider, with `config` checked against
    /// its spec: `Source::<Client>::new` for code that picks the provider at
    /// run time.
    pub fn source(self, config: Config) -> Result<AnySource, TokenError> {
        (self.0.build)(config)
    }

    #[cfg(feature = "sandbox")]
    pub(crate) fn registration(self) -> &'static Registration {
        self.0
    }
}

impl PartialEq for Provider {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}

impl Eq for Provider {}

impl Hash for Provider {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id().hash(state);
    }
}

impl PartialOrd for Provider {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Provider {
    fn cmp(&self, other: &Self) -> Ordering {
        self.id().cmp(other.id())
    }
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Provider({})", self.id())
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// A string that is not the id of a provider paytokens ships.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider `{id}`; expected one of: {ids}", id = .0, ids = ids())]
pub struct UnknownProvider(pub String);

fn ids() -> String {
    Provider::all()
        .map(Provider::id)
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for Provider {
    type Err = UnknownProvider;

    fn from_str(id: &str) -> Result<Self, Self::Err> {
        Provider::all()
            .find(|p| p.id() == id)
            .ok_or_else(|| UnknownProvider(id.to_owned()))
    }
}
