//! The HTTP API of `gear-api`, shared by the agent and the `gear` CLI.
//!
//! Routes (each documented in `docs/api.md`, each a [`Request`] variant): `GET /containers`,
//! `PUT|DELETE /container/:id`, `GET /container/:id/{status,ports,log}`,
//! `PUT /container/:id/{started,stopped}`, `POST /container/:id/restart`,
//! `GET|PUT|PATCH /environment/:id`, `PUT|DELETE /container/:id/{idle,idle-policy}`. Every error answer is JSON `{"Message": "..."}` with a
//! fitting 4xx/5xx status; `X-Request-Id` makes a request safe to retry.
//!
//! - [`request`]: the route table, parsing HTTP into [`Request`] and back;
//! - [`handle`]: carrying a request out against systemd and the disk;
//! - [`server`]: the accept loop of `gear-api`; `respond`, one request through it;
//! - [`reply`]: the typed answers, shared by the agent and its clients;
//! - [`limits`], [`browser`], [`auth`], [`listener`]: what the agent bounds and refuses
//!   (docs/security.md);
//! - [`client`]: what `gear` sends requests with; [`reach`]: each agent's token and TLS
//!   trust, from the flags and `~/.config/gear/hosts`;
//! - [`error`]: the errors and their status codes.

pub mod auth;
pub mod browser;
pub mod client;
pub mod error;
pub mod handle;
pub mod idempotency;
pub mod limits;
pub mod listener;
pub mod reach;
pub mod reply;
pub mod request;
mod respond;
pub mod server;

pub use client::Client;
pub use error::Error;
pub use request::Request;

pub use crate::locator::DEFAULT_PORT;
