//! Checksums of stored records, shared by the directory and SQLite stores.
//!
//! A record's checksum is FNV-1a (64 bits) over its canonical JSON: `serde_json`'s compact
//! serialization of the record, whose fields come in their declared order (records are structs).
//! It is written as 16 lower-case hex digits next to the record, and verified when the record is
//! loaded: a record whose content no longer gives its checksum is [`StoreError::Corrupt`], naming
//! the run and the record, and is never handed to a run.
//!
//! FNV-1a needs no dependency and catches the damage a store meets on a disk — a flipped bit, a
//! torn or misplaced write, a hand edit — with a chance of 2⁻⁶⁴ of missing one. It is not a
//! cryptographic signature: whoever can write the store can write a matching checksum.

use std::io;

use serde::Serialize;

use super::StoreError;

const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, fed as an [`io::Write`] so a record is hashed as it is serialized, without a buffer.
struct Fnv1a(u64);

impl io::Write for Fnv1a {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(PRIME);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The checksum of `record`: FNV-1a over `serde_json::to_vec(record)`.
///
/// Serializing a store's record cannot fail (its maps have string keys, and hashing never fails
/// to write); if a `Serialize` impl ever did fail, the sum would cover what was serialized before
/// it, the same at each call, so a record still verifies against itself.
pub(crate) fn sum_of<T: Serialize + ?Sized>(record: &T) -> u64 {
    let mut hash = Fnv1a(OFFSET_BASIS);
    let _ = serde_json::to_writer(&mut hash, record);
    hash.0
}

/// The checksum of a flat row (a struct of strings, integers, floats, booleans and options of
/// them: SQLite's rows as stored): FNV-1a over each column in order, tagged by kind and, for a
/// string, prefixed by its length — so no two different rows feed the same bytes, and no text
/// is escaped as JSON would (a row's JSON columns are strings, which JSON would escape again on
/// every checkpoint). A row with anything else in it is a bug of ours: its sum then covers the
/// columns before it, the same at each call.
pub(crate) fn row_sum<T: Serialize + ?Sized>(row: &T) -> u64 {
    let mut hash = Fnv1a(OFFSET_BASIS);
    let flat = row.serialize(Columns(&mut hash));
    debug_assert!(flat.is_ok(), "a stored row that is not flat");
    hash.0
}

/// Feeds the columns of a flat row to a hash (see [`row_sum`]).
struct Columns<'h>(&'h mut Fnv1a);

impl Columns<'_> {
    fn put(&mut self, tag: u8, bytes: &[u8]) -> Result<(), NotFlat> {
        let _ = io::Write::write_all(self.0, &[tag]);
        let _ = io::Write::write_all(self.0, bytes);
        Ok(())
    }
}

/// What [`Columns`] says of a value that is not a column.
#[derive(Debug)]
struct NotFlat;

impl std::fmt::Display for NotFlat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a flat row")
    }
}

impl std::error::Error for NotFlat {}

impl serde::ser::Error for NotFlat {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        NotFlat
    }
}

/// Implements the serializer methods a flat row never calls: `Err(NotFlat)`.
macro_rules! not_flat {
    ($($name:ident($($arg:ty),*) -> $ok:ty;)*) => {$(
        fn $name(self, $(_: $arg),*) -> Result<$ok, NotFlat> {
            Err(NotFlat)
        }
    )*};
}

impl<'h> serde::Serializer for Columns<'h> {
    type Ok = ();
    type Error = NotFlat;
    type SerializeSeq = serde::ser::Impossible<(), NotFlat>;
    type SerializeTuple = serde::ser::Impossible<(), NotFlat>;
    type SerializeTupleStruct = serde::ser::Impossible<(), NotFlat>;
    type SerializeTupleVariant = serde::ser::Impossible<(), NotFlat>;
    type SerializeMap = serde::ser::Impossible<(), NotFlat>;
    type SerializeStruct = Self;
    type SerializeStructVariant = serde::ser::Impossible<(), NotFlat>;

    fn serialize_none(mut self) -> Result<(), NotFlat> {
        self.put(0, &[])
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), NotFlat> {
        value.serialize(self)
    }
    fn serialize_str(mut self, v: &str) -> Result<(), NotFlat> {
        self.put(1, &(v.len() as u64).to_le_bytes())?;
        let _ = io::Write::write_all(self.0, v.as_bytes());
        Ok(())
    }
    fn serialize_i64(mut self, v: i64) -> Result<(), NotFlat> {
        self.put(2, &v.to_le_bytes())
    }
    fn serialize_u64(mut self, v: u64) -> Result<(), NotFlat> {
        self.put(3, &v.to_le_bytes())
    }
    fn serialize_f64(mut self, v: f64) -> Result<(), NotFlat> {
        self.put(4, &v.to_bits().to_le_bytes())
    }
    fn serialize_bool(mut self, v: bool) -> Result<(), NotFlat> {
        self.put(5, &[u8::from(v)])
    }
    fn serialize_i32(self, v: i32) -> Result<(), NotFlat> {
        self.serialize_i64(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<(), NotFlat> {
        self.serialize_u64(v.into())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, NotFlat> {
        Ok(self)
    }
    not_flat! {
        serialize_i8(i8) -> ();
        serialize_i16(i16) -> ();
        serialize_u8(u8) -> ();
        serialize_u16(u16) -> ();
        serialize_f32(f32) -> ();
        serialize_char(char) -> ();
        serialize_bytes(&[u8]) -> ();
        serialize_unit() -> ();
        serialize_unit_struct(&'static str) -> ();
        serialize_unit_variant(&'static str, u32, &'static str) -> ();
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), NotFlat> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), NotFlat> {
        Err(NotFlat)
    }
}

impl serde::ser::SerializeStruct for Columns<'_> {
    type Ok = ();
    type Error = NotFlat;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _: &'static str,
        value: &T,
    ) -> Result<(), NotFlat> {
        value.serialize(Columns(&mut *self.0))
    }

    fn end(self) -> Result<(), NotFlat> {
        Ok(())
    }
}

/// A checksum as it is stored: 16 lower-case hex digits.
pub(crate) fn to_hex(sum: u64) -> String {
    format!("{sum:016x}")
}

/// A stored checksum: exactly 16 lower-case hex digits (what [`to_hex`] writes), else `None`.
pub(crate) fn from_hex(text: &str) -> Option<u64> {
    let digits = text.len() == 16 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    digits.then(|| u64::from_str_radix(text, 16).ok()).flatten()
}

/// Which record a checksum belongs to, for the error that names it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Record<'a> {
    /// The run's own record (`FlowRecord`, or the `flows` row).
    Flow,
    /// The record of the step with this path.
    Step(&'a str),
    /// The record of a retry scope: the (sub-)flow it belongs to (`""` for the run's own) and
    /// its index there.
    Retry(&'a str, usize),
    /// The set of the run's rows (SQLite: its `graphs`, `atoms` and `retries` rows together).
    Rows,
}

impl Record<'_> {
    /// Like ``step `Parent/step` of flow `id` ``.
    pub(crate) fn describe(self, flow_id: &str) -> String {
        match self {
            Record::Flow => format!("flow record of flow `{flow_id}`"),
            Record::Step(name) => format!("record of step `{name}` of flow `{flow_id}`"),
            Record::Retry("", scope) => {
                format!("retry record of scope {scope} of flow `{flow_id}`")
            }
            Record::Retry(sub, scope) => {
                format!("retry record of scope {scope} of sub-flow `{sub}` of flow `{flow_id}`")
            }
            Record::Rows => format!("set of rows of flow `{flow_id}`"),
        }
    }
}

/// Checks a stored checksum against the one computed from the record as loaded.
///
/// `stored` is the text found with the record, `computed` the [`sum_of`] the record as loaded;
/// `what` is the record as the error names it (see [`Record::describe`]), with where it is.
pub(crate) fn verify(
    stored: &str,
    computed: u64,
    what: impl FnOnce() -> String,
) -> Result<(), StoreError> {
    match from_hex(stored) {
        Some(sum) if sum == computed => Ok(()),
        Some(_) => Err(StoreError::Corrupt {
            what: what(),
            detail: format!(
                "its checksum does not match its content (stored {stored}, computed {}): the \
                 record was changed after it was written (a damaged disk or file, or an edit)",
                to_hex(computed)
            ),
        }),
        None => Err(StoreError::Corrupt {
            what: what(),
            detail: format!("its checksum {stored:?} is not 16 lower-case hex digits"),
        }),
    }
}

/// The error for a record that must have a checksum and has none.
pub(crate) fn missing(what: String) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: "it has no checksum, which every record of this store version has".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published FNV-1a 64 test vectors, and the hex form.
    #[test]
    fn fnv1a_64_vectors() {
        let raw = |bytes: &[u8]| {
            let mut h = Fnv1a(OFFSET_BASIS);
            io::Write::write_all(&mut h, bytes).unwrap();
            h.0
        };
        assert_eq!(raw(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(raw(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(raw(b"foobar"), 0x8594_4171_f739_67e8);
        // A string serializes with its quotes.
        assert_eq!(sum_of("a"), raw(b"\"a\""));
        assert_eq!(to_hex(1), "0000000000000001");
        assert_eq!(
            from_hex(&to_hex(0xaf63_dc4c_8601_ec8c)),
            Some(0xaf63_dc4c_8601_ec8c)
        );
        for bad in [
            "AF63DC4C8601EC8C",
            "af63dc4c8601ec8",
            "+f63dc4c8601ec8c",
            "af63dc4c8601ec8g",
        ] {
            assert_eq!(from_hex(bad), None, "{bad}");
        }
    }

    /// A row's columns cannot run into each other: a moved boundary, a NULL for an empty text,
    /// a number for its text all give other sums.
    #[test]
    fn row_sums_tell_rows_apart() {
        #[derive(Serialize)]
        struct Row<'a> {
            a: &'a str,
            b: Option<&'a str>,
            n: i64,
            x: f64,
        }
        let sum = |a, b, n, x| row_sum(&Row { a, b, n, x });
        let base = sum("ab", Some("c"), 1, 0.5);
        assert_eq!(base, sum("ab", Some("c"), 1, 0.5));
        for other in [
            sum("a", Some("bc"), 1, 0.5),
            sum("ab", None, 1, 0.5),
            sum("ab", Some(""), 1, 0.5),
            sum("ab", Some("c"), 2, 0.5),
            sum("ab", Some("c"), 1, 0.25),
        ] {
            assert_ne!(base, other);
        }
        assert_ne!(sum("", None, 0, 0.0), sum("", Some(""), 0, 0.0));
    }

    #[test]
    fn a_mismatch_names_the_record_and_both_sums() {
        let e = verify(&to_hex(1), 2, || Record::Step("Sub/a").describe("run-1")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "corrupt record of step `Sub/a` of flow `run-1`: its checksum does not match its \
             content (stored 0000000000000001, computed 0000000000000002): the record was \
             changed after it was written (a damaged disk or file, or an edit)"
        );
        assert!(verify(&to_hex(2), 2, String::new).is_ok());
        assert!(verify("x", 2, String::new).is_err());
    }
}
