//! Stored values to and from JSON. Every value a durable run keeps (the inputs, each step's
//! outputs) passes through [`save`] and [`load`] (generated code reaches them through
//! `StorableIn`), which turn everything that can go wrong with the value itself into a
//! [`ValueError`]: an error of its `Serialize` or `Deserialize`, a panic in either, or JSON that
//! would not load back as the value.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::de::DeserializeOwned;
use serde::ser::{self, Serialize, Serializer};
use serde::Deserialize;
use serde_json::Value;

use crate::failure::panic_message;

/// Why a value of a durable run could not be stored, or a stored one not loaded back.
///
/// A step whose outputs cannot be stored fails with this error (find it with
/// [`Failure::downcast_ref`](crate::Failure::downcast_ref)); inputs that cannot be stored, or a
/// stored value that does not load, are a [`StoreError`](crate::store::StoreError) whose detail is
/// this error's text. The text names the field first when the value is one of several (an input,
/// or one of a step's outputs: `` `ratio`: ... ``).
///
/// ```
/// use std::sync::Arc;
/// use taskflow::prelude::*;
/// use taskflow::store::MemoryStore;
/// use taskflow::{DurableError, ValueError};
///
/// #[task(provides = ratio)]
/// fn measure() -> f64 { f64::NAN }
///
/// flow! { flow Measure() -> (ratio) { linear [ measure ] } }
///
/// fn main() {
///     let store = Arc::new(MemoryStore::new());
///     let err = Engine::serial()
///         .run(Measure, MeasureInputs {}).durable(store, "m").blocking()
///         .unwrap_err();
///     let DurableError::Failed(err) = err else { panic!("{err}") };
///     // JSON has no NaN: the step fails (and is reverted) rather than store `null`.
///     assert_eq!(err.failed_step(), "measure");
///     let why = err.failures()[0].downcast_ref::<ValueError>().unwrap();
///     assert!(matches!(why, ValueError::NotRoundTrip(_)));
///     assert!(why.to_string().contains("NaN"));
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// The value's `Serialize` failed (serde's message): a map whose keys are not strings, say.
    #[error("{0}")]
    Serialize(String),
    /// The stored JSON does not load as the type (serde's message), or lacks a field.
    #[error("{0}")]
    Deserialize(String),
    /// The value's `Serialize`, or the type's `Deserialize`, panicked: which, and the panic's
    /// message.
    #[error("{0}")]
    Panicked(String),
    /// The value serializes, but its JSON would not load back as the same value: a NaN or
    /// infinite float (JSON has no such number; `serde_json` writes `null`, which loads as
    /// `None` inside an `Option`, or not at all), or JSON its own `Deserialize` refuses.
    #[error("{0}")]
    NotRoundTrip(String),
}

impl ValueError {
    /// The same error, about field `field` of the value.
    pub(crate) fn in_field(self, field: &str) -> Self {
        let prefix = |detail: String| format!("`{field}`: {detail}");
        match self {
            ValueError::Serialize(d) => ValueError::Serialize(prefix(d)),
            ValueError::Deserialize(d) => ValueError::Deserialize(prefix(d)),
            ValueError::Panicked(d) => ValueError::Panicked(prefix(d)),
            ValueError::NotRoundTrip(d) => ValueError::NotRoundTrip(prefix(d)),
        }
    }
}

/// `value` as JSON, checked to load back: serializing it must neither fail nor panic nor meet a
/// float that JSON cannot hold, and the JSON must deserialize as `T` again (without panicking).
///
/// The check is that the JSON loads, not that it loads as an equal value (`T` need not be
/// `PartialEq`): a type whose `Serialize` and `Deserialize` disagree in a way that still loads is
/// not caught. Non-finite floats, the common case of that (`Some(f64::NAN)` would load as `None`),
/// are caught while serializing.
///
/// `T: Deserialize<'static>` rather than `DeserializeOwned` (which implies it): the bound of
/// `__private::SaveStored`, chosen by method resolution, which ignores lifetimes — a type like
/// `&'static str` passes `Deserialize<'static>` truly, where it would pass `DeserializeOwned` only
/// modulo lifetimes and then fail to compile. The check loads from an owned copy of the JSON, so
/// a type that can only borrow (`&'static str`) fails it, and no run stores one: such a flow is
/// not a `DurableFlow`.
pub(crate) fn save<T: Serialize + Deserialize<'static>>(value: &T) -> Result<Value, ValueError> {
    let non_finite = Cell::new(None);
    let serialized = catch_unwind(AssertUnwindSafe(|| {
        serde_json::to_value(Finite {
            value,
            non_finite: &non_finite,
        })
    }));
    // Whatever the serializer made of it (a `Serialize` may wrap or even drop the error), a
    // float JSON cannot hold is why.
    if let Some(v) = non_finite.get() {
        return Err(ValueError::NotRoundTrip(non_finite_detail(v)));
    }
    let json = match serialized {
        Ok(Ok(json)) => json,
        Ok(Err(e)) => return Err(ValueError::Serialize(e.to_string())),
        Err(payload) => {
            return Err(ValueError::Panicked(format!(
                "its `Serialize` panicked: {}",
                panic_message(&*payload)
            )))
        }
    };
    match deserialize::<T>(json.clone()) {
        Ok(_) => Ok(json),
        Err(ValueError::Deserialize(e)) => Err(ValueError::NotRoundTrip(format!(
            "it serializes, but its JSON does not load back: {e}"
        ))),
        Err(other) => Err(other),
    }
}

/// A stored value back from its JSON; a panic in `Deserialize` is an error too.
pub(crate) fn load<T: DeserializeOwned>(json: &Value) -> Result<T, ValueError> {
    deserialize(json)
}

/// `T` from `json`, a panic in its `Deserialize` an error too.
fn deserialize<'de, T: Deserialize<'de>>(
    json: impl serde::Deserializer<'de, Error = serde_json::Error>,
) -> Result<T, ValueError> {
    match catch_unwind(AssertUnwindSafe(|| T::deserialize(json))) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(ValueError::Deserialize(e.to_string())),
        Err(payload) => Err(ValueError::Panicked(format!(
            "its `Deserialize` panicked: {}",
            panic_message(&*payload)
        ))),
    }
}

fn non_finite_detail(v: f64) -> String {
    format!(
        "{v} cannot be stored: JSON has no NaN or infinite numbers (it would be written as `null`, \
         which does not load back as the number)"
    )
}

// ---- serializing with every float checked

/// `value`, serialized through [`Checked`]: a NaN or infinite float is an error (recorded in
/// `non_finite`) instead of the `null` that `serde_json` writes.
struct Finite<'a, T: ?Sized> {
    value: &'a T,
    non_finite: &'a Cell<Option<f64>>,
}

impl<T: Serialize + ?Sized> Serialize for Finite<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(Checked {
            inner: serializer,
            non_finite: self.non_finite,
        })
    }
}

/// A serializer (or one of its compound serializers) that forwards everything to `inner`,
/// checking floats, and wraps every nested value in [`Finite`].
struct Checked<'a, S> {
    inner: S,
    non_finite: &'a Cell<Option<f64>>,
}

impl<'a, S> Checked<'a, S> {
    fn nested<'v, T: ?Sized>(&self, value: &'v T) -> Finite<'v, T>
    where
        'a: 'v,
    {
        Finite {
            value,
            non_finite: self.non_finite,
        }
    }

    fn check<E: ser::Error>(&self, v: f64) -> Result<(), E> {
        if v.is_finite() {
            Ok(())
        } else {
            self.non_finite.set(Some(v));
            Err(E::custom(non_finite_detail(v)))
        }
    }
}

macro_rules! forward {
    ($($method:ident($t:ty);)*) => {
        $(fn $method(self, v: $t) -> Result<S::Ok, S::Error> {
            self.inner.$method(v)
        })*
    };
}

impl<'a, S: Serializer> Serializer for Checked<'a, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Checked<'a, S::SerializeSeq>;
    type SerializeTuple = Checked<'a, S::SerializeTuple>;
    type SerializeTupleStruct = Checked<'a, S::SerializeTupleStruct>;
    type SerializeTupleVariant = Checked<'a, S::SerializeTupleVariant>;
    type SerializeMap = Checked<'a, S::SerializeMap>;
    type SerializeStruct = Checked<'a, S::SerializeStruct>;
    type SerializeStructVariant = Checked<'a, S::SerializeStructVariant>;

    forward! {
        serialize_bool(bool);
        serialize_i8(i8);
        serialize_i16(i16);
        serialize_i32(i32);
        serialize_i64(i64);
        serialize_i128(i128);
        serialize_u8(u8);
        serialize_u16(u16);
        serialize_u32(u32);
        serialize_u64(u64);
        serialize_u128(u128);
        serialize_char(char);
        serialize_str(&str);
        serialize_bytes(&[u8]);
        serialize_unit_struct(&'static str);
    }

    fn serialize_f32(self, v: f32) -> Result<S::Ok, S::Error> {
        self.check(f64::from(v))?;
        self.inner.serialize_f32(v)
    }

    fn serialize_f64(self, v: f64) -> Result<S::Ok, S::Error> {
        self.check(v)?;
        self.inner.serialize_f64(v)
    }

    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        self.inner.serialize_none()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        let value = self.nested(value);
        self.inner.serialize_some(&value)
    }

    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit_variant(name, index, variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let value = self.nested(value);
        self.inner.serialize_newtype_struct(name, &value)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let value = self.nested(value);
        self.inner
            .serialize_newtype_variant(name, index, variant, &value)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        let non_finite = self.non_finite;
        Ok(Checked {
            inner: self.inner.serialize_seq(len)?,
            non_finite,
        })
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        let non_finite = self.non_finite;
        Ok(Checked {
            inner: self.inner.serialize_tuple(len)?,
            non_finite,
        })
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        let non_finite = self.non_finite;
        Ok(Checked {
            inner: self.inner.serialize_tuple_struct(name, len)?,
            non_finite,
        })
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        let non_finite = self.non_finite;
        Ok(Checked {
            inner: self
                .inner
                .serialize_tuple_variant(name, index, variant, len)?,
            non_finite,
        })
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        let non_finite = self.non_finite;
        Ok(Checked {
            inner: self.inner.serialize_map(len)?,
            non_finite,
        })
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        let non_finite = self.non_finite;
        Ok(Checked {
            inner: self.inner.serialize_struct(name, len)?,
            non_finite,
        })
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        let non_finite = self.non_finite;
        Ok(Checked {
            inner: self
                .inner
                .serialize_struct_variant(name, index, variant, len)?,
            non_finite,
        })
    }

    fn collect_str<T: std::fmt::Display + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.inner.collect_str(value)
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

impl<S: ser::SerializeSeq> ser::SerializeSeq for Checked<'_, S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        let value = self.nested(value);
        self.inner.serialize_element(&value)
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

impl<S: ser::SerializeTuple> ser::SerializeTuple for Checked<'_, S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        let value = self.nested(value);
        self.inner.serialize_element(&value)
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

impl<S: ser::SerializeTupleStruct> ser::SerializeTupleStruct for Checked<'_, S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        let value = self.nested(value);
        self.inner.serialize_field(&value)
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

impl<S: ser::SerializeTupleVariant> ser::SerializeTupleVariant for Checked<'_, S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        let value = self.nested(value);
        self.inner.serialize_field(&value)
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

impl<S: ser::SerializeMap> ser::SerializeMap for Checked<'_, S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), S::Error> {
        let key = self.nested(key);
        self.inner.serialize_key(&key)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        let value = self.nested(value);
        self.inner.serialize_value(&value)
    }

    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Result<(), S::Error> {
        let (key, value) = (self.nested(key), self.nested(value));
        self.inner.serialize_entry(&key, &value)
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

impl<S: ser::SerializeStruct> ser::SerializeStruct for Checked<'_, S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), S::Error> {
        let value = self.nested(value);
        self.inner.serialize_field(key, &value)
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
        self.inner.skip_field(key)
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

impl<S: ser::SerializeStructVariant> ser::SerializeStructVariant for Checked<'_, S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), S::Error> {
        let value = self.nested(value);
        self.inner.serialize_field(key, &value)
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
        self.inner.skip_field(key)
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    enum Shape {
        Circle { r: f64 },
        Pair(f32, f32),
        Scaled(f64),
    }

    #[test]
    fn finite_values_are_saved_as_serde_json_writes_them() {
        let value = (
            vec![Some(1.5f64), None],
            Shape::Circle { r: 2.0 },
            BTreeMap::from([("k".to_owned(), Shape::Pair(0.5, -1.0))]),
            "text".to_owned(),
            u64::MAX,
        );
        assert_eq!(save(&value).unwrap(), serde_json::to_value(&value).unwrap());
    }

    #[test]
    fn a_non_finite_float_anywhere_is_not_round_trip() {
        fn rejected<T: Serialize + DeserializeOwned>(value: T) -> String {
            match save(&value) {
                Err(ValueError::NotRoundTrip(detail)) => detail,
                other => panic!("expected NotRoundTrip, got {other:?}"),
            }
        }
        assert!(rejected(f64::NAN).starts_with("NaN cannot be stored"));
        // `null` would load back as `None`: without the check this one would pass silently.
        assert!(rejected(Some(f64::NAN)).starts_with("NaN cannot be stored"));
        assert!(rejected(vec![1.0, f64::INFINITY]).starts_with("inf cannot be stored"));
        assert!(rejected(Shape::Circle {
            r: f64::NEG_INFINITY
        })
        .starts_with("-inf"));
        assert!(rejected(Shape::Pair(0.0, f32::NAN)).starts_with("NaN"));
        assert!(rejected(Shape::Scaled(f64::NAN)).starts_with("NaN"));
        assert!(rejected(HashMap::from([("k".to_owned(), f32::NAN)])).starts_with("NaN"));
        assert!(rejected((1u8, [f64::NAN])).starts_with("NaN"));
    }

    #[test]
    fn serialize_errors_and_json_that_does_not_load_back_are_told_apart() {
        let keys = HashMap::from([((1u8, 2u8), 3u8)]);
        assert_eq!(
            save(&keys),
            Err(ValueError::Serialize("key must be a string".into()))
        );

        /// Serializes as a string, loads only from a number.
        #[derive(Debug)]
        struct Lopsided;
        impl Serialize for Lopsided {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str("lopsided")
            }
        }
        impl<'de> serde::Deserialize<'de> for Lopsided {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                u8::deserialize(d).map(|_| Lopsided)
            }
        }
        match save(&Lopsided) {
            Err(ValueError::NotRoundTrip(detail)) => {
                assert!(detail.contains("does not load back"), "{detail}")
            }
            other => panic!("{other:?}"),
        }
    }

    /// Panics while serializing or loading.
    #[derive(Debug)]
    struct Grumpy(bool);
    impl Serialize for Grumpy {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            assert!(!self.0, "grumpy today");
            s.serialize_bool(self.0)
        }
    }
    impl<'de> serde::Deserialize<'de> for Grumpy {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            assert!(bool::deserialize(d)?, "grumpy on load");
            Ok(Grumpy(true))
        }
    }

    #[test]
    fn a_panic_in_serialize_or_deserialize_is_an_error() {
        assert_eq!(
            save(&Grumpy(true)).unwrap_err(),
            ValueError::Panicked("its `Serialize` panicked: grumpy today".into())
        );
        // The check that the value loads back meets the panic too.
        assert_eq!(
            save(&Grumpy(false)).unwrap_err(),
            ValueError::Panicked("its `Deserialize` panicked: grumpy on load".into())
        );
        assert_eq!(
            load::<Grumpy>(&Value::Bool(false)).unwrap_err(),
            ValueError::Panicked("its `Deserialize` panicked: grumpy on load".into())
        );
        assert_eq!(
            load::<u8>(&Value::Bool(false))
                .unwrap_err()
                .in_field("n")
                .to_string(),
            "`n`: invalid type: boolean `false`, expected u8"
        );
    }
}
