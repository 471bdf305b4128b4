//! Serde through a type's `Display` and `FromStr`, so JSON input is validated exactly like
//! CLI input: one macro for every validated newtype.

/// Implements `Serialize` with `Display` and `Deserialize` with `FromStr` for `$name`.
macro_rules! serde_via_str {
    ($name:ty) => {
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use serde_via_str;
