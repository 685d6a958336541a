//! The Prometheus remote-write 1.0 messages (`prometheus.WriteRequest` of
//! `prompb/remote.proto` and `types.proto`), declared with prost's derive
//! so no `.proto` compiler runs at build time; only the fields a writer
//! sends. A request body is the message, protobuf-encoded, in snappy's
//! *block* format (not the framed one).

/// `prometheus.WriteRequest`: the body of one remote-write request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series, each with its samples.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`: one label set and its samples.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Labels, sorted by name, `__name__` among them.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Float samples, oldest first.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Native histogram samples, oldest first.
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<Histogram>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    /// Label name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Label value (never empty: an empty value means no label).
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`: one float value at one time.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.Histogram` (integer counts): one native histogram sample.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    /// Number of observations (`count_int`).
    #[prost(uint64, tag = "1")]
    pub count_int: u64,
    /// Sum of observations.
    #[prost(double, tag = "3")]
    pub sum: f64,
    /// Bucket resolution: boundaries are powers of `2^(2^-schema)`.
    #[prost(sint32, tag = "4")]
    pub schema: i32,
    /// Width of the zero bucket.
    #[prost(double, tag = "5")]
    pub zero_threshold: f64,
    /// Observations in the zero bucket (`zero_count_int`).
    #[prost(uint64, tag = "6")]
    pub zero_count_int: u64,
    /// Runs of populated positive buckets.
    #[prost(message, repeated, tag = "11")]
    pub positive_spans: Vec<BucketSpan>,
    /// Bucket counts, each the difference from the previous bucket's.
    #[prost(sint64, repeated, tag = "12")]
    pub positive_deltas: Vec<i64>,
    /// Reset hint: 0 unknown, 1 yes, 2 no, 3 gauge.
    #[prost(int32, tag = "14")]
    pub reset_hint: i32,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
}

/// `prometheus.BucketSpan`: `length` consecutive buckets starting
/// `offset` buckets after the previous span ended.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BucketSpan {
    /// Gap to the previous span (or the index of the first bucket).
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    /// Number of buckets in the span.
    #[prost(uint32, tag = "2")]
    pub length: u32,
}

impl WriteRequest {
    /// The request body: protobuf, then snappy block compression.
    pub fn to_body(&self) -> Vec<u8> {
        let raw = prost::Message::encode_to_vec(self);
        // Compressing a buffer into a fresh encoder only fails on input
        // past snappy's 4 GiB block limit, which a request never nears.
        snap::raw::Encoder::new()
            .compress_vec(&raw)
            .unwrap_or_default()
    }

    /// Decodes a body made by [`WriteRequest::to_body`] (tests, a check
    /// of what the queue holds).
    pub fn from_body(body: &[u8]) -> Result<Self, String> {
        let raw = snap::raw::Decoder::new()
            .decompress_vec(body)
            .map_err(|e| format!("not snappy: {e}"))?;
        <Self as prost::Message>::decode(raw.as_slice()).map_err(|e| format!("not protobuf: {e}"))
    }

    /// How many samples (float and histogram) the request carries.
    pub fn sample_count(&self) -> u64 {
        self.timeseries
            .iter()
            .map(|t| (t.samples.len() + t.histograms.len()) as u64)
            .sum()
    }
}
