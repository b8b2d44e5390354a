//! The Portcullis request pipeline, without I/O.
//!
//! - [`router`]: compiled route table; host, method and path template matching.
//! - [`pipeline`]: the fixed order of [`pipeline::Phase`]s, the [`pipeline::Filter`]s compiled
//!   per route, the per-request [`pipeline::RequestCtx`] and the [`pipeline::Verdict`] a filter
//!   returns.
//! - [`rejection`]: the one JSON shape of every response the gateway itself makes.

#![forbid(unsafe_code)]

pub mod pipeline;
pub mod ratelimit;
pub mod rejection;
pub mod router;

pub use pipeline::{
    Chain, CredentialLookup, Decision, Filter, Grants, NoCredentials, Phase, Principal, RequestCtx,
    Verdict,
};
pub use ratelimit::{LimitCtx, LimitOutcome, LimitState};
pub use rejection::Rejection;
pub use router::{PathParams, RouteMatch, Router};
