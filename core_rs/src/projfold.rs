//! The projector's hot fold, as pure byte work (no I/O, no Python): stream messages that are a
//! `csms.exchange` (envelope version 2: a station's CALL and our answer) become the rows of
//! `events` and `transaction_facts` exactly as `streams/projections/fold.py` (the reference
//! implementation) folds them, written straight into ClickHouse `Native` blocks.
//!
//! Only the common case is handled here: an exchange whose action needs no state or correlation
//! (MeterValues, with the 1.6 energy readings as facts, Heartbeat, Authorize, DataTransfer, ...).
//! Anything else, and anything that is not exactly what the gateway writes (an unknown field, a
//! value of an unexpected type or out of range, a timestamp in a form this parser does not know,
//! a payload the Python fold would turn into a poison row), is *declined*: [`fold_exchange`]
//! returns `false` and writes nothing, and the caller folds that message in Python. So this
//! fold never has to be right about the rare shapes, only about the ones it accepts.
//!
//! Nothing read from the stream is trusted: no length or count from the data is used to index
//! or allocate, and nothing here panics.

use rustc_hash::FxHashMap;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// `events` columns, in `streams/projections/rows.py` order, with the type this block writes
/// (LowCardinality columns are written as plain String: the engine converts).
pub const EVENT_COLUMNS: [(&str, &str); 16] = [
    ("station_id", "String"),
    ("received_at", "DateTime64(9, 'UTC')"),
    ("stream_seq", "UInt64"),
    ("idx", "UInt32"),
    ("event_id", "String"),
    ("kind", "String"),
    ("ocpp_version", "String"),
    ("direction", "String"),
    ("message_type", "UInt8"),
    ("unique_id", "String"),
    ("action", "String"),
    ("raw", "String"),
    ("node_id", "String"),
    ("session_id", "String"),
    ("seq", "UInt64"),
    ("reason", "String"),
];

/// `transaction_facts` columns, in `streams/projections/rows.py` order.
pub const FACT_COLUMNS: [(&str, &str); 18] = [
    ("station_id", "String"),
    ("transaction_id", "String"),
    ("stream_seq", "UInt64"),
    ("idx", "UInt32"),
    ("n", "UInt32"),
    ("fact", "String"),
    ("ocpp_version", "String"),
    ("at", "DateTime64(3, 'UTC')"),
    ("seq_no", "Nullable(Int64)"),
    ("offline", "UInt8"),
    ("evse_id", "Nullable(Int32)"),
    ("connector_id", "Nullable(Int32)"),
    ("id_token", "String"),
    ("meter_wh", "Nullable(Float64)"),
    ("role", "String"),
    ("stop_reason", "String"),
    ("charging_state", "String"),
    ("corr", "String"),
];

const ENERGY_REGISTER: &str = "Energy.Active.Import.Register";

/// Actions whose fold needs more than the exchange itself (or makes other tables' rows): always
/// declined, the Python fold does them.
const DECLINED_ACTIONS: [&str; 5] = [
    "StatusNotification",
    "BootNotification",
    "TransactionEvent",
    "StartTransaction",
    "StopTransaction",
];

/// The envelope, field for field (`streams/envelope.py` `Exchange`); an unknown or repeated
/// field makes serde refuse it, which declines the message.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Exchange<'a> {
    #[serde(borrow)]
    r#type: std::borrow::Cow<'a, str>,
    version: i64,
    #[serde(borrow)]
    node_id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    session_id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    station_id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    ocpp_version: std::borrow::Cow<'a, str>,
    seq: u64,
    #[serde(borrow)]
    unique_id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    action: std::borrow::Cow<'a, str>,
    call_at_ns: i64,
    answer_type: u8,
    answer_at_ns: i64,
    #[serde(borrow)]
    call: &'a RawValue,
    #[serde(borrow)]
    answer: &'a RawValue,
}

/// One column being written: its bytes, and for a Nullable column its null map.
#[derive(Default, Clone)]
struct Column {
    nulls: Vec<u8>,
    data: Vec<u8>,
}

/// A table's rows as the columns of one `Native` block.
#[derive(Clone)]
pub struct NativeTable {
    names: &'static [(&'static str, &'static str)],
    columns: Vec<Column>,
    rows: usize,
}

impl NativeTable {
    fn new(names: &'static [(&'static str, &'static str)]) -> Self {
        NativeTable {
            names,
            columns: vec![Column::default(); names.len()],
            rows: 0,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The `Native` block: column and row counts, then each column's name, type and data.
    pub fn block(&self) -> Vec<u8> {
        let size: usize = self
            .columns
            .iter()
            .map(|c| c.nulls.len() + c.data.len() + 64)
            .sum();
        let mut out = Vec::with_capacity(size + 16);
        leb128(&mut out, self.names.len() as u64);
        leb128(&mut out, self.rows as u64);
        for ((name, kind), column) in self.names.iter().zip(&self.columns) {
            string(&mut out, name.as_bytes());
            string(&mut out, kind.as_bytes());
            out.extend_from_slice(&column.nulls);
            out.extend_from_slice(&column.data);
        }
        out
    }

    fn append(&mut self, other: &NativeTable) {
        for (mine, theirs) in self.columns.iter_mut().zip(&other.columns) {
            mine.nulls.extend_from_slice(&theirs.nulls);
            mine.data.extend_from_slice(&theirs.data);
        }
        self.rows += other.rows;
    }
}

/// One value of a row given from outside (the Python fold's rows).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    Str(&'a str),
    Int(i128),
    Float(f64),
    Null,
}

impl NativeTable {
    /// An empty table of `events` or `transaction_facts`; `None` for any other name.
    pub fn for_table(table: &str) -> Option<Self> {
        match table {
            "events" => Some(NativeTable::new(&EVENT_COLUMNS)),
            "transaction_facts" => Some(NativeTable::new(&FACT_COLUMNS)),
            _ => None,
        }
    }

    pub fn width(&self) -> usize {
        self.names.len()
    }

    /// Append one row; `Err` (and nothing appended) when a value does not fit its column.
    pub fn push_row(&mut self, cells: &[Cell<'_>]) -> Result<(), String> {
        if cells.len() != self.names.len() {
            return Err(format!(
                "{} values for {} columns",
                cells.len(),
                self.names.len()
            ));
        }
        let mut encoded: Vec<(Option<u8>, Vec<u8>)> = Vec::with_capacity(cells.len());
        for ((name, kind), cell) in self.names.iter().zip(cells) {
            encoded.push(
                encode_cell(kind, cell)
                    .ok_or_else(|| format!("{cell:?} does not fit {name} {kind}"))?,
            );
        }
        for (column, (null, data)) in self.columns.iter_mut().zip(encoded) {
            if let Some(null) = null {
                column.nulls.push(null);
            }
            column.data.extend_from_slice(&data);
        }
        self.rows += 1;
        Ok(())
    }

    /// Append `other`'s rows (same table).
    pub fn extend(&mut self, other: &NativeTable) {
        self.append(other);
    }
}

fn encode_cell(kind: &str, cell: &Cell<'_>) -> Option<(Option<u8>, Vec<u8>)> {
    let int = |cell: &Cell<'_>| match cell {
        Cell::Int(v) => Some(*v),
        _ => None,
    };
    let value = match kind {
        "String" => match cell {
            Cell::Str(s) => {
                let mut out = Vec::with_capacity(s.len() + 2);
                string(&mut out, s.as_bytes());
                out
            }
            _ => return None,
        },
        "UInt64" => u64::try_from(int(cell)?).ok()?.to_le_bytes().to_vec(),
        "UInt32" => u32::try_from(int(cell)?).ok()?.to_le_bytes().to_vec(),
        "UInt8" => u8::try_from(int(cell)?).ok()?.to_le_bytes().to_vec(),
        k if k.starts_with("DateTime64(") => i64::try_from(int(cell)?).ok()?.to_le_bytes().to_vec(),
        "Nullable(Int64)" | "Nullable(Int32)" | "Nullable(Float64)" => {
            let bytes = match (kind, cell) {
                ("Nullable(Int64)", Cell::Null) => 0i64.to_le_bytes().to_vec(),
                ("Nullable(Int32)", Cell::Null) => 0i32.to_le_bytes().to_vec(),
                ("Nullable(Float64)", Cell::Null) => 0f64.to_le_bytes().to_vec(),
                ("Nullable(Int64)", Cell::Int(v)) => i64::try_from(*v).ok()?.to_le_bytes().to_vec(),
                ("Nullable(Int32)", Cell::Int(v)) => i32::try_from(*v).ok()?.to_le_bytes().to_vec(),
                ("Nullable(Float64)", Cell::Float(v)) => v.to_le_bytes().to_vec(),
                _ => return None,
            };
            return Some((Some(u8::from(*cell == Cell::Null)), bytes));
        }
        _ => return None,
    };
    Some((None, value))
}

/// A row being written into a [`NativeTable`], column after column.
struct RowWriter<'t> {
    columns: std::slice::IterMut<'t, Column>,
}

impl RowWriter<'_> {
    fn next(&mut self) -> Option<&mut Column> {
        self.columns.next()
    }
    fn str(&mut self, value: &str) {
        if let Some(c) = self.next() {
            string(&mut c.data, value.as_bytes());
        }
    }
    fn u64(&mut self, value: u64) {
        if let Some(c) = self.next() {
            c.data.extend_from_slice(&value.to_le_bytes());
        }
    }
    fn i64(&mut self, value: i64) {
        if let Some(c) = self.next() {
            c.data.extend_from_slice(&value.to_le_bytes());
        }
    }
    fn u32(&mut self, value: u32) {
        if let Some(c) = self.next() {
            c.data.extend_from_slice(&value.to_le_bytes());
        }
    }
    fn u8(&mut self, value: u8) {
        if let Some(c) = self.next() {
            c.data.push(value);
        }
    }
    fn opt_i64(&mut self, value: Option<i64>) {
        if let Some(c) = self.next() {
            c.nulls.push(u8::from(value.is_none()));
            c.data.extend_from_slice(&value.unwrap_or(0).to_le_bytes());
        }
    }
    fn opt_i32(&mut self, value: Option<i32>) {
        if let Some(c) = self.next() {
            c.nulls.push(u8::from(value.is_none()));
            c.data.extend_from_slice(&value.unwrap_or(0).to_le_bytes());
        }
    }
    fn opt_f64(&mut self, value: Option<f64>) {
        if let Some(c) = self.next() {
            c.nulls.push(u8::from(value.is_none()));
            c.data
                .extend_from_slice(&value.unwrap_or(0.0).to_le_bytes());
        }
    }
}

impl NativeTable {
    fn row(&mut self) -> RowWriter<'_> {
        self.rows += 1;
        RowWriter {
            columns: self.columns.iter_mut(),
        }
    }
}

fn leb128(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn string(out: &mut Vec<u8>, value: &[u8]) {
    leb128(out, value.len() as u64);
    out.extend_from_slice(value);
}

/// Everything the accepted messages of a batch fold to.
pub struct Folded {
    pub events: NativeTable,
    pub facts: NativeTable,
    /// Latest time (ns) each station was seen in the accepted messages (`station_seen`).
    pub seen: FxHashMap<String, i64>,
}

impl Default for Folded {
    fn default() -> Self {
        Folded {
            events: NativeTable::new(&EVENT_COLUMNS),
            facts: NativeTable::new(&FACT_COLUMNS),
            seen: FxHashMap::default(),
        }
    }
}

impl Folded {
    /// Room for the `raw` column of messages of `bytes` bytes in all (a hint: the buffers
    /// grow as needed, this spares their copies).
    pub fn with_room(bytes: usize) -> Self {
        let mut folded = Folded::default();
        if let Some(raw) = folded.events.columns.get_mut(11) {
            raw.data.reserve(bytes.min(1 << 30));
        }
        folded
    }
}

/// An energy register reading of a 1.6 MeterValues (`streams/projections/meter.py` Reading).
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub at_ms: i64,
    pub energy_wh: f64,
    pub role: &'static str,
}

/// Fold one stream message (stream sequence `stream_seq`) into `out`; `false` (and nothing
/// written) when it is not an exchange this fold accepts: the caller folds it in Python.
pub fn fold_exchange(stream_seq: u64, data: &[u8], out: &mut Folded) -> bool {
    if !data.starts_with(b"{\"type\":\"csms.exchange\"") {
        return false;
    }
    if unusual_json(data) {
        return false;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(x) = serde_json::from_str::<Exchange<'_>>(text) else {
        return false;
    };
    if x.r#type != "csms.exchange" || x.version != 2 {
        return false;
    }
    let action: &str = &x.action;
    if DECLINED_ACTIONS.contains(&action) {
        return false;
    }
    let Some(answer_seq) = x.seq.checked_add(1) else {
        return false;
    };
    if x.call_at_ns < 0 || x.answer_at_ns < 0 {
        return false;
    }
    let v16 = x.ocpp_version == "1.6";
    let mut readings = Vec::new();
    let mut transaction_id = String::new();
    let mut connector_id = None;
    if action == "MeterValues" && v16 {
        let received_ms = x.call_at_ns / 1_000_000;
        match meter_values_16(x.call.get(), received_ms) {
            Some(Some(found)) => {
                transaction_id = found.transaction_id;
                connector_id = found.connector_id;
                readings = found.readings;
            }
            Some(None) => {}
            None => return false,
        }
    }
    if u32::try_from(readings.len()).is_err() {
        return false;
    }
    // nothing below declines: the rows go straight into the batch's tables
    let events = &mut out.events;
    let facts = &mut out.facts;
    for (idx, seq, at_ns, inbound, message_type, raw) in [
        (0u32, x.seq, x.call_at_ns, true, 2u8, x.call.get()),
        (
            1,
            answer_seq,
            x.answer_at_ns,
            false,
            x.answer_type,
            x.answer.get(),
        ),
    ] {
        let event_id = format!("{}-{}-{}", x.node_id, x.session_id, seq);
        let mut row = events.row();
        row.str(&x.station_id);
        row.i64(at_ns);
        row.u64(stream_seq);
        row.u32(idx);
        row.str(&event_id);
        row.str("frame");
        row.str(&x.ocpp_version);
        row.str(if inbound { "in" } else { "out" });
        row.u8(message_type);
        row.str(&x.unique_id);
        row.str(action);
        row.str(raw);
        row.str(&x.node_id);
        row.str(&x.session_id);
        row.u64(seq);
        row.str("");
    }
    for (n, reading) in (0u32..).zip(&readings) {
        let mut row = facts.row();
        row.str(&x.station_id);
        row.str(&transaction_id);
        row.u64(stream_seq);
        row.u32(0);
        row.u32(n);
        row.str("reading");
        row.str(&x.ocpp_version);
        row.i64(reading.at_ms);
        row.opt_i64(None);
        row.u8(0);
        row.opt_i32(None);
        row.opt_i32(connector_id);
        row.str("");
        row.opt_f64(Some(reading.energy_wh));
        row.str(reading.role);
        row.str("");
        row.str("");
        row.str("");
    }
    let latest = x.call_at_ns.max(x.answer_at_ns);
    let seen = out.seen.entry(x.station_id.into_owned()).or_insert(0);
    *seen = (*seen).max(latest);
    true
}

/// Could msgspec (the Python fold) refuse what serde reads here? serde does not check values
/// it skips as strictly: a `\u` escape (a lone surrogate is refused by msgspec, skipped by
/// serde) or a number that may overflow a float (`1e999`: msgspec refuses it, serde skips it).
/// The gateway embeds no frame with a `\u` escape, and meter values have short numbers, so
/// declining these costs nothing in practice. A byte scan, strings included (a decline is
/// always safe).
fn unusual_json(data: &[u8]) -> bool {
    if memchr::memmem::find(data, b"\\u").is_some() {
        return true;
    }
    let mut digits = 0usize;
    let mut exponent_at = None;
    for (i, &b) in data.iter().enumerate() {
        if b.is_ascii_digit() {
            digits += 1;
            if digits > 100 {
                return true;
            }
            if let Some(at) = exponent_at {
                if i - at > 2 {
                    return true; // a third exponent digit
                }
            }
            continue;
        }
        let after_number = digits > 0 || exponent_at.is_some();
        let mantissa_ends = (b == b'e' || b == b'E') && digits > 0;
        let signed = (b == b'+' || b == b'-') && exponent_at == Some(i.wrapping_sub(1));
        if mantissa_ends || signed {
            exponent_at = Some(i);
        } else if !(b == b'.' && after_number) {
            exponent_at = None;
        }
        digits = 0;
    }
    false
}

/// What a 1.6 MeterValues that names its transaction gives.
pub struct MeterFacts {
    pub transaction_id: String,
    pub connector_id: Option<i32>,
    pub readings: Vec<Reading>,
}

/// A 1.6 MeterValues payload, typed: a field of another type than these makes serde refuse it
/// (decline). Objects are read as raw values first and checked to be objects: serde would
/// also read a struct from a JSON array, which the Python fold would not.
#[derive(Deserialize)]
struct MeterPayload<'a> {
    #[serde(rename = "connectorId", default)]
    connector_id: Option<serde_json::Number>,
    #[serde(rename = "transactionId", default, borrow)]
    transaction_id: Option<&'a RawValue>,
    #[serde(rename = "meterValue", default, borrow)]
    meter_value: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct MeterValue<'a> {
    #[serde(default, borrow)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(rename = "sampledValue", default, borrow)]
    sampled_value: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct Sampled<'a> {
    #[serde(default, borrow)]
    value: Option<&'a RawValue>,
    #[serde(default, borrow)]
    measurand: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    phase: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    unit: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    context: Option<Cow<'a, str>>,
}

/// A JSON object (as raw text) read as `T`; `None` for anything else.
fn object<'a, T: Deserialize<'a>>(raw: &'a RawValue) -> Option<T> {
    let text = raw.get();
    if !text.starts_with('{') {
        return None;
    }
    serde_json::from_str(text).ok()
}

/// `transactions.meter_values_16` of the CALL frame `raw`: `None` to decline, `Some(None)` for
/// no facts (no transactionId).
pub fn meter_values_16(raw: &str, received_ms: i64) -> Option<Option<MeterFacts>> {
    let frame: Vec<&RawValue> = serde_json::from_str(raw).ok()?;
    let payload: MeterPayload<'_> = object(frame.get(3)?)?;
    let connector_id = match payload.connector_id {
        None => None,
        Some(n) => Some(i32::try_from(n.as_i64()?).ok()?),
    };
    let Some(id) = payload.transaction_id else {
        return Some(None);
    };
    let id = id.get();
    let transaction_id = if id.starts_with('"') {
        serde_json::from_str::<Cow<'_, str>>(id).ok()?.into_owned()
    } else {
        let n: serde_json::Number = serde_json::from_str(id).ok()?;
        if !(n.is_i64() || n.is_u64()) {
            return None;
        }
        n.to_string()
    };
    let readings = match payload.meter_value {
        None => Vec::new(),
        Some(values) => energy_readings_16(&values, received_ms)?,
    };
    Some(Some(MeterFacts {
        transaction_id,
        connector_id,
        readings,
    }))
}

/// `meter.energy_readings` for 1.6 (unphased Energy.Active.Import.Register values in Wh).
fn energy_readings_16(meter_values: &[&RawValue], received_ms: i64) -> Option<Vec<Reading>> {
    let mut readings = Vec::new();
    for meter_value in meter_values {
        let meter_value: MeterValue<'_> = object(meter_value)?;
        let Some(sampled_values) = meter_value.sampled_value else {
            continue;
        };
        let mut at_ms = 0i64;
        for sampled in sampled_values {
            let sampled: Sampled<'_> = object(sampled)?;
            let measurand = sampled.measurand.as_deref().unwrap_or("");
            if !measurand.is_empty() && measurand != ENERGY_REGISTER {
                continue;
            }
            if !sampled.phase.as_deref().unwrap_or("").is_empty() {
                continue;
            }
            let unit = match sampled.unit.as_deref().unwrap_or("") {
                "" => "Wh",
                unit => unit,
            };
            let number = match sampled.value.map(RawValue::get) {
                None => None,
                Some(text) if text.starts_with('"') => {
                    python_float(&serde_json::from_str::<Cow<'_, str>>(text).ok()?)?
                }
                Some(text) if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) => {
                    let n: serde_json::Number = serde_json::from_str(text).ok()?;
                    if let Some(v) = n.as_i64() {
                        Some(v as f64)
                    } else if let Some(v) = n.as_u64() {
                        Some(v as f64)
                    } else {
                        return None; // a JSON float: msgspec's rounding is not checked here
                    }
                }
                Some(_) => None, // null, true/false, array, object: not a number
            };
            let factor = match unit {
                "Wh" => 1.0,
                "kWh" => 1000.0,
                _ => continue,
            };
            let Some(number) = number else {
                continue;
            };
            if at_ms == 0 {
                at_ms = match meter_value.timestamp.as_deref() {
                    Some(text) => parse_time_ms(text)?,
                    None => None,
                }
                .filter(|&ms| ms != 0)
                .unwrap_or(received_ms);
            }
            let role = match sampled.context.as_deref().unwrap_or("") {
                "Transaction.Begin" => "begin",
                "Transaction.End" => "end",
                _ => "sample",
            };
            readings.push(Reading {
                at_ms,
                energy_wh: number * factor,
                role,
            });
        }
    }
    Some(readings)
}

/// Python's `float(text)` with the NaN/infinity filter of `units.to_number`, for the plain
/// decimal forms only: `Some(None)` for a string Python does not read as a finite number,
/// `None` (decline) for any form this function does not know for certain (whitespace,
/// underscores, `inf`, ...).
fn python_float(text: &str) -> Option<Option<f64>> {
    let bytes = text.as_bytes();
    let body = bytes
        .strip_prefix(b"-")
        .or_else(|| bytes.strip_prefix(b"+"))
        .unwrap_or(bytes);
    let (mantissa, exponent) = match body.iter().position(|&b| b == b'e' || b == b'E') {
        Some(at) => (body.get(..at)?, Some(body.get(at + 1..)?)),
        None => (body, None),
    };
    let (whole, fraction) = match mantissa.iter().position(|&b| b == b'.') {
        Some(at) => (mantissa.get(..at)?, Some(mantissa.get(at + 1..)?)),
        None => (mantissa, None),
    };
    let digits = |part: &[u8]| part.iter().all(u8::is_ascii_digit);
    let plain = digits(whole)
        && fraction.is_none_or(digits)
        && (!whole.is_empty() || fraction.is_some_and(|f| !f.is_empty()));
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e
            .strip_prefix(b"-")
            .or_else(|| e.strip_prefix(b"+"))
            .unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    if !(plain && exponent_ok) {
        // Python may read it (" 1", "1_0", "inf") or not ("abc"); only a string without any
        // digit, sign, dot, letter e/E, underscore or space is certainly not a number
        let maybe = bytes.iter().any(|b| {
            b.is_ascii_digit() || b.is_ascii_whitespace() || b"+-._eEiInNaAfFtTyY".contains(b)
        });
        return if maybe || !text.is_ascii() {
            None
        } else {
            Some(None)
        };
    }
    let value: f64 = text.parse().ok()?;
    Some(value.is_finite().then_some(value))
}

/// `rows.parse_time_ms` for the forms the gateway and stations send: `YYYY-MM-DDTHH:MM:SS`,
/// an optional fraction of 1 to 6 digits, then `Z`, `+HH:MM`, `-HH:MM` or nothing (UTC).
/// `None` (decline) for anything else, including dates Python would refuse.
pub fn parse_time_ms(text: &str) -> Option<Option<i64>> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let sep = |at: usize, c: u8| b.get(at) == Some(&c);
    if !(sep(4, b'-') && sep(7, b'-') && sep(10, b'T') && sep(13, b':') && sep(16, b':')) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1970..=2200).contains(&year) || !(1..=12).contains(&month) || day < 1 {
        return None;
    }
    if day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut at = 19;
    let mut micros = 0i64;
    if sep(at, b'.') {
        let digits = b
            .get(at + 1..)?
            .iter()
            .take_while(|d| d.is_ascii_digit())
            .count();
        if !(1..=6).contains(&digits) {
            return None;
        }
        micros = num(at + 1, digits)? * 10i64.pow(6 - digits as u32);
        at += 1 + digits;
    }
    let offset_s = match b.get(at..)? {
        b"" | b"Z" => 0,
        [sign @ (b'+' | b'-'), ..] if b.len() == at + 6 && sep(at + 3, b':') => {
            let (h, m) = (num(at + 1, 2)?, num(at + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let s = h * 3600 + m * 60;
            if *sign == b'-' {
                -s
            } else {
                s
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_s;
    let total_us = seconds * 1_000_000 + micros;
    // Python: int(datetime.timestamp() * 1000); timestamp() is the exact microseconds / 10**6,
    // correctly rounded, which this is while the microseconds stay below 2**53
    let timestamp = total_us as f64 / 1_000_000.0;
    Some(Some((timestamp * 1000.0) as i64))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn exchange(action: &str, version: &str, call: &str) -> String {
        format!(
            concat!(
                r#"{{"type":"csms.exchange","version":2,"node_id":"n","session_id":"s","#,
                r#""station_id":"CP1","ocpp_version":"{}","seq":3,"unique_id":"u","action":"{}","#,
                r#""call_at_ns":1767225600000000000,"answer_type":3,"#,
                r#""answer_at_ns":1767225600001000000,"call":{},"answer":[3,"u",{{}}]}}"#
            ),
            version, action, call
        )
    }

    const METER: &str = r#"[2,"u","MeterValues",{"connectorId":1,"transactionId":7,"meterValue":[{"timestamp":"2026-01-01T00:01:00.5Z","sampledValue":[{"value":"1.5","unit":"kWh"},{"value":"3","measurand":"Voltage","unit":"V"},{"value":"2","phase":"L1"},{"value":"4","context":"Transaction.End"}]}]}]"#;

    #[test]
    fn a_meter_values_exchange_folds_to_events_and_readings() {
        let mut out = Folded::default();
        assert!(fold_exchange(
            9,
            exchange("MeterValues", "1.6", METER).as_bytes(),
            &mut out
        ));
        assert_eq!(out.events.rows(), 2);
        assert_eq!(out.facts.rows(), 2);
        assert_eq!(out.seen.get("CP1"), Some(&1_767_225_600_001_000_000));
        let block = out.events.block();
        assert_eq!(&block[..2], &[16, 2]);
    }

    #[test]
    fn readings_follow_the_python_rules() {
        let found = meter_values_16(METER, 5).unwrap().unwrap();
        assert_eq!(found.transaction_id, "7");
        assert_eq!(found.connector_id, Some(1));
        let at = 1_767_225_660_500;
        assert_eq!(
            found.readings,
            vec![
                Reading {
                    at_ms: at,
                    energy_wh: 1500.0,
                    role: "sample"
                },
                Reading {
                    at_ms: at,
                    energy_wh: 4.0,
                    role: "end"
                },
            ]
        );
    }

    #[test]
    fn unusual_shapes_are_declined() {
        let mut out = Folded::default();
        for data in [
            exchange(
                "StartTransaction",
                "1.6",
                r#"[2,"u","StartTransaction",{}]"#,
            ),
            exchange("MeterValues", "1.6", r#"[2,"u","MeterValues",[]]"#),
            exchange(
                "MeterValues",
                "1.6",
                r#"[2,"u","MeterValues",{"transactionId":1.5}]"#,
            ),
            exchange(
                "MeterValues",
                "1.6",
                r#"[2,"u","MeterValues",{"transactionId":1,"connectorId":99999999999}]"#,
            ),
            exchange(
                "MeterValues",
                "1.6",
                r#"[2,"u","MeterValues",{"transactionId":1,"meterValue":[{"timestamp":"x","sampledValue":[{"value":"1"}]}]}]"#,
            ),
            exchange(
                "MeterValues",
                "1.6",
                r#"[2,"u","MeterValues",{"transactionId":1,"meterValue":[{"sampledValue":[{"value":" 1"}]}]}]"#,
            ),
            exchange("MeterValues", "1.6", METER).replace("\"version\":2", "\"version\":3"),
            exchange("MeterValues", "1.6", METER).replace("\"seq\":3", "\"seq\":3,\"extra\":1"),
            "[1,2]".to_string(),
            "{\"type\":\"csms.exchange\"".to_string(),
        ] {
            assert!(!fold_exchange(1, data.as_bytes(), &mut out), "{data}");
        }
        assert_eq!(out.events.rows(), 0);
        assert_eq!(out.facts.rows(), 0);
    }

    #[test]
    fn other_actions_and_versions_give_events_only() {
        let mut out = Folded::default();
        assert!(fold_exchange(
            1,
            exchange("Heartbeat", "1.6", r#"[2,"u","Heartbeat",{}]"#).as_bytes(),
            &mut out
        ));
        assert!(fold_exchange(
            2,
            exchange("MeterValues", "2.0.1", r#"[2,"u","MeterValues",7]"#).as_bytes(),
            &mut out
        ));
        assert_eq!(out.events.rows(), 4);
        assert_eq!(out.facts.rows(), 0);
    }

    #[test]
    fn given_rows_are_checked_against_their_columns() {
        let mut table = NativeTable::for_table("transaction_facts").unwrap();
        let mut row = vec![
            Cell::Str("CP1"),
            Cell::Str("7"),
            Cell::Int(1),
            Cell::Int(0),
            Cell::Int(0),
        ];
        row.extend([
            Cell::Str("reading"),
            Cell::Str("1.6"),
            Cell::Int(5),
            Cell::Null,
            Cell::Int(0),
        ]);
        row.extend([
            Cell::Null,
            Cell::Int(1),
            Cell::Str(""),
            Cell::Float(1.5),
            Cell::Str("sample"),
        ]);
        row.extend([Cell::Str(""), Cell::Str(""), Cell::Str("")]);
        assert!(table.push_row(&row).is_ok());
        let mut bad = row.clone();
        bad[11] = Cell::Int(1 << 40);
        assert!(table.push_row(&bad).is_err());
        bad[11] = Cell::Str("1");
        assert!(table.push_row(&bad).is_err());
        assert!(table.push_row(&row[..5]).is_err());
        assert_eq!(table.rows(), 1);
        assert!(NativeTable::for_table("meter_values").is_none());
    }

    #[test]
    fn json_msgspec_may_refuse_is_declined() {
        for unusual in [
            &b"\\ud800"[..],
            b"1e999",
            b"-1E+400",
            b"2.5e100",
            &[b'7'; 101],
        ] {
            assert!(
                unusual_json(unusual),
                "{}",
                String::from_utf8_lossy(unusual)
            );
        }
        for usual in [
            &b"1e99"[..],
            b"1.5E-10",
            b"12345.678",
            b"e1000",
            b"[2,\"e\",{}]",
        ] {
            assert!(!unusual_json(usual), "{}", String::from_utf8_lossy(usual));
        }
    }

    #[test]
    fn times_and_numbers() {
        assert_eq!(parse_time_ms("1970-01-01T00:00:01Z"), Some(Some(1000)));
        assert_eq!(
            parse_time_ms("2026-01-01T01:00:00+01:00"),
            Some(Some(1_767_225_600_000))
        );
        assert_eq!(
            parse_time_ms("2024-02-29T00:00:00.123456"),
            Some(Some(1_709_164_800_123))
        );
        assert_eq!(parse_time_ms("2023-02-29T00:00:00Z"), None);
        assert_eq!(parse_time_ms("2026-01-01T00:00:00.1234567Z"), None);
        assert_eq!(python_float("1.5"), Some(Some(1.5)));
        assert_eq!(python_float("-2e3"), Some(Some(-2000.0)));
        assert_eq!(python_float("1e999"), Some(None));
        assert_eq!(python_float("inf"), None);
        assert_eq!(python_float("abc"), None);
        assert_eq!(python_float("--"), None);
        assert_eq!(python_float("?"), Some(None));
    }
}
