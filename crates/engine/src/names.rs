//! Enums whose variants have fixed names — in JSON, in the database, in SSE event names:
//! [`named_enum!`] declares one with a single table that serde, `as_str` and `FromStr` all
//! read, so the names cannot drift apart.

/// A stored or received name that matches no variant of an enum: the data was written by
/// something else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{name}`")]
pub struct UnknownName {
    pub kind: &'static str,
    pub name: String,
}

impl UnknownName {
    pub fn new(kind: &'static str, name: &str) -> UnknownName {
        UnknownName {
            kind,
            name: name.to_string(),
        }
    }
}

/// Declares a fieldless enum with a name per variant (`Variant = "name"`): serde reads and
/// writes the names, `as_str` gives them, `FromStr` parses them (anything else is an
/// [`UnknownName`] of the kind given in parentheses), `Display` prints them, and `ALL` lists
/// the variants in order.
///
/// ```
/// crossfire_engine::named_enum! {
///     #[derive(Debug, Clone, Copy, PartialEq)]
///     pub enum Light("light") { Red = "red", Green = "green" }
/// }
/// assert_eq!(Light::Green.as_str(), "green");
/// assert_eq!("red".parse::<Light>(), Ok(Light::Red));
/// assert_eq!(serde_json::to_string(&Light::Red).unwrap(), "\"red\"");
/// assert!("blue".parse::<Light>().is_err());
/// ```
#[macro_export]
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($kind:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(::serde::Serialize, ::serde::Deserialize)]
        $vis enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant ),+
        }

        impl $name {
            /// Every variant, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The variant's name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::names::UnknownName;

            fn from_str(name: &str) -> ::std::result::Result<$name, Self::Err> {
                match name {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::names::UnknownName::new($kind, name)),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
