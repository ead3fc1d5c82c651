//! Decoding the model's internally tagged enums (`{"kind": "table", ...fields}`) without the
//! buffering serde's derive does.
//!
//! The derive for `#[serde(tag = "kind")]` cannot know where in a map the tag is, so it first
//! buffers the whole object into a generic tree (every string and map allocated once more) and
//! then decodes the tree: for a restore that was most of the time spent per record. Every writer
//! of lakelog's formats (rmp-serde's named encoding, serde_json, both through the derived
//! `Serialize`) writes the tag first, so [`kind_tagged!`] reads the first key: when it is `kind`,
//! its value picks the variant and the rest of the map is decoded straight into it. Any other
//! order still decodes, through a buffered `serde_json::Value` (the derive's cost, never paid for
//! what lakelog writes), and so does the sequence form (`[kind, fields...]`) the derive accepts.
//!
//! Must never: change what the enums encode to or what they decode from (the golden files in
//! `tests/fixtures/` and the codec's tests pin both).

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, Error as _, IgnoredAny, MapAccess, SeqAccess, VariantAccess,
    Visitor,
};

/// Declares an enum serialised as `#[serde(tag = "kind", rename_all = "snake_case")]` whose
/// `Deserialize` reads `kind` first (see the module docs). The variants are written once: a
/// variant added inside the braces is encoded and decoded with no other change (the decoder is
/// derived from the same tokens, externally tagged, through `serde(remote)`).
macro_rules! kind_tagged {
    ($(#[$attr:meta])* $vis:vis enum $name:ident { $($body:tt)* }) => {
        $(#[$attr])*
        #[derive(serde::Serialize)]
        #[serde(tag = "kind", rename_all = "snake_case")]
        $vis enum $name { $($body)* }

        const _: () = {
            type Target = $name;

            // The same variants, externally tagged: what decodes a variant once its tag is known
            // (never built: only its derived `deserialize`, which builds the real enum, runs).
            #[allow(dead_code, clippy::large_enum_variant)]
            #[derive(serde::Deserialize)]
            #[serde(remote = "Target", rename_all = "snake_case")]
            enum Mirror { $($body)* }

            impl<'de> $crate::model::tagged::Variants<'de> for $name {
                fn variant<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    Mirror::deserialize(d)
                }
            }

            impl<'de> serde::Deserialize<'de> for $name {
                fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    $crate::model::tagged::deserialize(d)
                }
            }
        };
    };
}
pub(crate) use kind_tagged;

/// An enum decoded externally tagged (`{variant: fields}`, through serde's `deserialize_enum`).
pub trait Variants<'de>: Sized {
    fn variant<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error>;
}

/// Decodes an internally tagged `T`, reading its `kind` first.
pub fn deserialize<'de, D: Deserializer<'de>, T: Variants<'de>>(d: D) -> Result<T, D::Error> {
    d.deserialize_any(KindFirst(PhantomData))
}

struct KindFirst<T>(PhantomData<T>);

impl<'de, T: Variants<'de>> Visitor<'de> for KindFirst<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map with a `kind` field")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        match map.next_key_seed(KeyName)? {
            None => Err(A::Error::missing_field("kind")),
            Some(Key::Kind) => T::variant(TagThenRest(Rest::<A, Absent<A::Error>>::Map(map))),
            Some(Key::Other(first)) => buffered(first, map),
        }
    }

    /// The form the derive also accepts: the tag, then the variant's fields in order.
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        T::variant(TagThenRest(Rest::<Absent<A::Error>, A>::Seq(seq)))
    }
}

/// The tag was not first: the map is buffered, as the derive buffers it, then decoded.
fn buffered<'de, T: Variants<'de>, A: MapAccess<'de>>(first: String, mut map: A) -> Result<T, A::Error> {
    let mut fields = serde_json::Map::new();
    let mut tag = None;
    let mut key = Some(first);
    while let Some(k) = key {
        if k == "kind" {
            tag = Some(map.next_value::<String>()?);
        } else {
            fields.insert(k, map.next_value()?);
        }
        key = map.next_key()?;
    }
    let tag = tag.ok_or_else(|| A::Error::missing_field("kind"))?;
    let external = serde_json::Value::Object([(tag, serde_json::Value::Object(fields))].into_iter().collect());
    T::variant(external).map_err(A::Error::custom)
}

enum Key {
    Kind,
    Other(String),
}

/// A map key: `kind`, or another name (kept for the buffered path).
struct KeyName;

impl<'de> DeserializeSeed<'de> for KeyName {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for KeyName {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(if v == "kind" { Key::Kind } else { Key::Other(v.to_string()) })
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Key, E> {
        match std::str::from_utf8(v) {
            Ok(s) => self.visit_str(s),
            Err(_) => Err(E::invalid_value(de::Unexpected::Bytes(v), &self)),
        }
    }
}

/// What follows the tag: the rest of a map, or of a sequence.
enum Rest<M, S> {
    Map(M),
    Seq(S),
}

/// The other side's type of a [`Rest`] (never built).
struct Absent<E>(PhantomData<E>);

impl<'de, E: de::Error> MapAccess<'de> for Absent<E> {
    type Error = E;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, _: K) -> Result<Option<K::Value>, E> {
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, _: V) -> Result<V::Value, E> {
        Err(E::custom("no value"))
    }
}

impl<'de, E: de::Error> SeqAccess<'de> for Absent<E> {
    type Error = E;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, _: T) -> Result<Option<T::Value>, E> {
        Ok(None)
    }
}

/// An externally tagged enum made of the tag just read and the rest of its map (or sequence):
/// what the mirror's derived `Deserialize` decodes.
struct TagThenRest<M, S>(Rest<M, S>);

impl<'de, E: de::Error, M: MapAccess<'de, Error = E>, S: SeqAccess<'de, Error = E>> Deserializer<'de>
    for TagThenRest<M, S>
{
    type Error = E;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_enum(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

impl<'de, E: de::Error, M: MapAccess<'de, Error = E>, S: SeqAccess<'de, Error = E>> EnumAccess<'de>
    for TagThenRest<M, S>
{
    type Error = E;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(mut self, seed: V) -> Result<(V::Value, Self), E> {
        let variant = match &mut self.0 {
            Rest::Map(map) => map.next_value_seed(seed)?,
            Rest::Seq(seq) => seq.next_element_seed(seed)?.ok_or_else(|| E::invalid_length(0, &"a `kind` first"))?,
        };
        Ok((variant, self))
    }
}

impl<'de, E: de::Error, M: MapAccess<'de, Error = E>, S: SeqAccess<'de, Error = E>> VariantAccess<'de>
    for TagThenRest<M, S>
{
    type Error = E;

    fn unit_variant(self) -> Result<(), E> {
        match self.0 {
            Rest::Map(mut map) => while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {},
            Rest::Seq(mut seq) => while seq.next_element::<IgnoredAny>()?.is_some() {},
        }
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, E> {
        match self.0 {
            Rest::Map(map) => seed.deserialize(MapAccessDeserializer::new(map)),
            Rest::Seq(seq) => seed.deserialize(SeqAccessDeserializer::new(seq)),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, E> {
        Err(E::custom("a tuple variant cannot be internally tagged"))
    }

    fn struct_variant<V: Visitor<'de>>(self, _: &'static [&'static str], visitor: V) -> Result<V::Value, E> {
        match self.0 {
            Rest::Map(map) => visitor.visit_map(map),
            Rest::Seq(seq) => visitor.visit_seq(seq),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{CatalogObject, ObjectKey, Partition, Table};

    fn partition_key() -> ObjectKey {
        ObjectKey::Partition {
            catalog: "1".into(),
            database: "db".into(),
            table: "t".into(),
            values: vec!["2026-01-01".into(), "eu".into()],
        }
    }

    /// What the derive wrote decodes on the fast path, in both formats lakelog writes.
    #[test]
    fn the_tag_first_form_round_trips_in_messagepack_and_json() {
        let key = partition_key();
        let state = CatalogObject::Table(Table { database_name: "db".into(), name: "t".into(), ..Default::default() });
        let bytes = rmp_serde::to_vec_named(&(&key, &state)).unwrap();
        assert_eq!(rmp_serde::from_slice::<(ObjectKey, CatalogObject)>(&bytes).unwrap(), (key.clone(), state.clone()));
        let json = serde_json::to_string(&(&key, &state)).unwrap();
        assert!(json.starts_with(r#"[{"kind":"partition""#), "{json}");
        assert_eq!(serde_json::from_str::<(ObjectKey, CatalogObject)>(&json).unwrap(), (key, state));
    }

    /// A hand-written (or foreign) document with `kind` elsewhere decodes as it did with the
    /// derive, as does the sequence form; unknown fields are ignored, as before.
    #[test]
    fn kind_anywhere_and_the_sequence_form_still_decode() {
        let json =
            r#"{"catalog":"1","database":"db","kind":"partition","table":"t","values":["2026-01-01","eu"],"extra":1}"#;
        assert_eq!(serde_json::from_str::<ObjectKey>(json).unwrap(), partition_key());
        let json = r#"{"values":["2026-01-01"],"kind":"partition","database_name":"db","table_name":"t"}"#;
        let p = Partition {
            database_name: "db".into(),
            table_name: "t".into(),
            values: vec!["2026-01-01".into()],
            ..Default::default()
        };
        assert_eq!(serde_json::from_str::<CatalogObject>(json).unwrap(), CatalogObject::Partition(p));
        let seq = rmp_serde::to_vec(&("table", "1", "db", "t")).unwrap();
        assert_eq!(
            rmp_serde::from_slice::<ObjectKey>(&seq).unwrap(),
            ObjectKey::Table { catalog: "1".into(), database: "db".into(), table: "t".into() }
        );
    }

    #[test]
    fn a_missing_or_unknown_kind_is_named() {
        let missing = serde_json::from_str::<ObjectKey>(r#"{"catalog":"1","database":"db"}"#).unwrap_err();
        assert!(missing.to_string().contains("missing field `kind`"), "{missing}");
        let unknown = serde_json::from_str::<ObjectKey>(r#"{"kind":"view","catalog":"1"}"#).unwrap_err();
        assert!(unknown.to_string().contains("unknown variant `view`"), "{unknown}");
        let empty = rmp_serde::from_slice::<CatalogObject>(&rmp_serde::to_vec_named(&serde_json::json!({})).unwrap());
        assert!(empty.unwrap_err().to_string().contains("kind"));
    }
}
