//! `POST /images/pull`: a pull in its own task, answered with JSON lines as Docker reports
//! progress.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};

use super::{Detached, Reply, tokio_stream_from};
use crate::api::error::Error;
use crate::api::reply::Pulled;
use crate::container::host::{Host, Parts};
use crate::container::spec::Image;

/// One line of the answer of `POST /images/pull`: progress while it runs, then the result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PullLine {
    /// One of Docker's progress messages (`<layer> Downloading [==>  ] 1.2MB/3MB`).
    Progress {
        /// The text.
        #[serde(rename = "Progress")]
        progress: String,
    },
    /// It is pulled.
    Pulled {
        /// The image and its id.
        #[serde(rename = "Pulled")]
        pulled: Pulled,
    },
    /// It failed, with the status a plain answer would have had.
    Failed {
        /// Why.
        #[serde(rename = "Message")]
        message: String,
        /// The HTTP status.
        #[serde(rename = "Status")]
        status: u16,
    },
}

/// Pulls `image` in its own task (it completes if the client hangs up) and streams
/// [`PullLine`]s.
pub(super) fn pull_with_progress<P: Parts>(host: Arc<Host<P>>, image: Image) -> Reply {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let detached = Detached::new(&host.detached);
    let done = tokio::spawn(async move {
        let _detached = detached;
        host.pull(&image, Some(&tx)).await
    });
    let line = |l: PullLine| {
        let text = serde_json::to_string(&l).unwrap_or_else(|e| format!("{{\"Message\":\"{e}\"}}"));
        Ok(Bytes::from(text + "\n"))
    };
    let progress = tokio_stream_from(rx).map(move |p| line(PullLine::Progress { progress: p }));
    let result = futures_util::stream::once(async move {
        line(match done.await {
            Ok(Ok(pulled)) => PullLine::Pulled { pulled },
            Ok(Err(e)) => {
                let e = Error::from(e);
                PullLine::Failed {
                    message: e.to_string(),
                    status: e.status().as_u16(),
                }
            }
            Err(e) => PullLine::Failed {
                message: format!("the pull task failed: {e}"),
                status: 500,
            },
        })
    });
    Reply::Stream("application/x-ndjson", Box::pin(progress.chain(result)))
}
