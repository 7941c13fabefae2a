//! The shape of the domain's closed sets of names (statuses, audit actions): an enum whose
//! variants are written on the wire, and stored, by a fixed name.

/// Defines a copyable, ordered enum whose variants serialize as the names given, with `ALL` (in
/// the order written), `as_str`, `Display` and a `FromStr` that refuses any other name with
/// `$unknown`. The names are token trees, not `literal` fragments: the OpenAPI derive does not
/// see a rename through the invisible group a `literal` fragment becomes.
macro_rules! wire_enum {
    (
        $(#[$doc:meta])*
        $name:ident, unknown: $unknown:ident {
            $($(#[$variant_doc:meta])* $variant:ident = $wire:tt,)+
        }
    ) => {
        $(#[$doc])*
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            PartialOrd,
            Ord,
            Hash,
            serde::Serialize,
            serde::Deserialize,
            utoipa::ToSchema,
        )]
        pub enum $name {
            $(
                $(#[$variant_doc])*
                #[serde(rename = $wire)]
                $variant,
            )+
        }

        impl $name {
            /// Every variant, in the order written.
            pub const ALL: [$name; [$($wire),+].len()] = [$($name::$variant),+];

            /// The wire (and stored) name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $unknown;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::ALL
                    .into_iter()
                    .find(|variant| variant.as_str() == s)
                    .ok_or_else(|| $unknown(s.to_owned()))
            }
        }
    };
}

pub(super) use wire_enum;
