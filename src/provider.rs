//! The providers paytokens speaks to, named by the kebab-case id used for
//! their spec file, generated crate, CLI argument and module.

use std::fmt;
use std::str::FromStr;

/// A payment provider whose token endpoint paytokens knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Provider {
    /// Pyng B2B Receivables (`pyng-billing`).
    PyngBilling,
    /// Pyng Checkout (`pyng-checkout`).
    PyngCheckout,
    /// Autopay (`autopay`).
    Autopay,
    /// Singapay (`singapay`).
    Singapay,
}

impl Provider {
    /// Every provider, in the order the README lists them.
    pub const ALL: [Provider; 4] = [
        Provider::PyngBilling,
        Provider::PyngCheckout,
        Provider::Autopay,
        Provider::Singapay,
    ];

    /// The kebab-case id: `pyng-billing`, `pyng-checkout`, `autopay`, `singapay`.
    pub const fn id(self) -> &'static str {
        match self {
            Provider::PyngBilling => "pyng-billing",
            Provider::PyngCheckout => "pyng-checkout",
            Provider::Autopay => "autopay",
            Provider::Singapay => "singapay",
        }
    }

    /// The provider's product name, for people.
    pub const fn name(self) -> &'static str {
        match self {
            Provider::PyngBilling => "Pyng B2B Receivables",
            Provider::PyngCheckout => "Pyng Checkout",
            Provider::Autopay => "Autopay",
            Provider::Singapay => "Singapay",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// A string that is not a provider id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider `{0}`; expected one of: pyng-billing, pyng-checkout, autopay, singapay")]
pub struct UnknownProvider(pub String);

impl FromStr for Provider {
    type Err = UnknownProvider;

    fn from_str(id: &str) -> Result<Self, Self::Err> {
        Provider::ALL
            .into_iter()
            .find(|p| p.id() == id)
            .ok_or_else(|| UnknownProvider(id.to_owned()))
    }
}
