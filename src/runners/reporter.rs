//! The remote [`SessionReporter`]: a runner's session reports to the server over HTTP under
//! the item's lease. Reports are numbered per session and sent in order from one thread; a
//! batch the server did not answer (the network dropped) is sent again as it was, and the
//! server applies each number once, so nothing is lost and nothing is doubled. The session's
//! log is shipped from its file as it grows. At the end the files its artifacts name and the
//! item's diff are uploaded, then the completion. Once the server refuses a write (409: the
//! lease moved on), everything after it is refused too: the attempt no longer counts.

use super::http::{encode, Http, HttpError};
use crate::dispatch::reporter::{Answer, SessionReporter};
use crate::model::{AgentSession as SessionRecord, ArtifactKind};
use crate::queue::{
    CompleteOutcome, Completion, FailAttempt, PersonAnswered, PersonAsked, Report, ReportBody,
    TokenUsage, Verdict,
};
use futures_channel::oneshot;
use serde_json::{json, Value};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Most log bytes shipped in one report.
const LOG_CHUNK: usize = 256 << 10;
/// How long an unanswered write is retried before the attempt is given up here (the lease
/// has long run out by then; the server has sent the item back).
const RETRY_FOR: Duration = Duration::from_secs(3600);

enum Job {
    Report(ReportBody),
    Complete(Completion, oneshot::Sender<Result<CompleteOutcome, String>>),
    Fail(FailAttempt, oneshot::Sender<Result<(), String>>),
}

/// What the sending thread needs to know about the attempt.
pub struct Lease {
    pub runner_id: String,
    pub item_id: String,
    pub fence: u64,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

pub struct RemoteReporter {
    jobs: mpsc::Sender<Job>,
}

impl RemoteReporter {
    pub fn start(http: Http, lease: Lease) -> std::io::Result<RemoteReporter> {
        let (jobs, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("runner-reports".into())
            .spawn(move || Sender::new(http, lease).run(rx))?;
        Ok(RemoteReporter { jobs })
    }
}

impl SessionReporter for RemoteReporter {
    fn started(&self, session: SessionRecord) {
        let _ = self.jobs.send(Job::Report(ReportBody::Started { session }));
    }

    fn progress(&self, _: &str, _: &str, messages: Vec<String>, usage: TokenUsage) {
        let _ = self.jobs.send(Job::Report(ReportBody::Progress {
            messages,
            input_tokens: usage.input,
            output_tokens: usage.output,
        }));
    }

    fn changed(&self, session: SessionRecord, reason: Option<String>) {
        let _ = self
            .jobs
            .send(Job::Report(ReportBody::Changed { session, reason }));
    }

    fn complete(&self, _: &str, work: Completion) -> Answer<CompleteOutcome> {
        let (tx, rx) = oneshot::channel();
        let _ = self.jobs.send(Job::Complete(work, tx));
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err("the reporter stopped".into()))
        })
    }

    /// The server's approvals desk does not reach a runner's sessions: a runner's ACP agents
    /// follow the runner's own `[approvals]` policy, and a request that would ask a person is
    /// refused at `approvals.timeout_secs`. The sentence saying so reaches the item's log as
    /// progress, so nothing is sent here.
    fn person_asked(&self, _: PersonAsked) {}

    fn person_answered(&self, _: PersonAnswered) {}

    fn fail(&self, failed: FailAttempt) -> Answer<()> {
        let (tx, rx) = oneshot::channel();
        let _ = self.jobs.send(Job::Fail(failed, tx));
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err("the reporter stopped".into()))
        })
    }
}

struct Sender {
    http: Http,
    lease: Lease,
    seq: u64,
    pending: Vec<Report>,
    log_offset: u64,
    /// Why the server refused this attempt's writes, once it has.
    refused: Option<String>,
}

impl Sender {
    fn new(http: Http, lease: Lease) -> Sender {
        Sender {
            http,
            lease,
            seq: 0,
            pending: Vec::new(),
            log_offset: 0,
            refused: None,
        }
    }

    fn path(&self, action: &str) -> String {
        format!(
            "/api/runners/{}/items/{}/{action}",
            encode(&self.lease.runner_id),
            encode(&self.lease.item_id)
        )
    }

    fn push(&mut self, body: ReportBody) {
        self.seq += 1;
        self.pending.push(Report {
            seq: self.seq,
            body,
        });
    }

    /// New whole lines of the session's log, as one report.
    fn ship_log(&mut self) {
        let Ok(mut file) = std::fs::File::open(&self.lease.log) else {
            return;
        };
        if file.seek(SeekFrom::Start(self.log_offset)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        if file.take(LOG_CHUNK as u64).read_to_end(&mut buf).is_err() {
            return;
        }
        let Some(end) = buf.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        buf.truncate(end + 1);
        self.log_offset += buf.len() as u64;
        let text = String::from_utf8_lossy(&buf).into_owned();
        self.push(ReportBody::Log { text });
    }

    /// Retries `call` while the server cannot be reached; a refusal is final.
    fn retried<T>(
        &mut self,
        mut call: impl FnMut(&Http) -> Result<T, HttpError>,
    ) -> Result<T, String> {
        if let Some(why) = &self.refused {
            return Err(why.clone());
        }
        let started = Instant::now();
        loop {
            match call(&self.http) {
                Ok(v) => return Ok(v),
                Err(HttpError::Transport(e)) if started.elapsed() < RETRY_FOR => {
                    log::debug!("item {}: {e}; trying again", self.lease.item_id);
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(e) => {
                    let why = e.to_string();
                    log::warn!("item {}: refused: {why}", self.lease.item_id);
                    self.refused = Some(why.clone());
                    return Err(why);
                }
            }
        }
    }

    fn flush(&mut self) -> Result<(), String> {
        self.ship_log();
        while !self.pending.is_empty() {
            let batch: Vec<Report> = self.pending.drain(..self.pending.len().min(500)).collect();
            let body = json!({"fence": self.lease.fence, "reports": batch});
            let path = self.path("reports");
            self.retried(|http| http.post::<Value>(&path, &body))?;
        }
        Ok(())
    }

    fn run(mut self, jobs: mpsc::Receiver<Job>) {
        loop {
            match jobs.recv_timeout(Duration::from_millis(500)) {
                Ok(Job::Report(body)) => {
                    self.push(body);
                    // Whatever else is queued goes in the same batch.
                    while let Ok(job) = jobs.try_recv() {
                        match job {
                            Job::Report(body) => self.push(body),
                            other => {
                                let _ = self.flush();
                                self.finish(other);
                                return;
                            }
                        }
                    }
                    let _ = self.flush();
                }
                Ok(end) => {
                    let _ = self.flush();
                    self.finish(end);
                    return;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.flush();
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = self.flush();
                    return;
                }
            }
        }
    }

    fn finish(&mut self, job: Job) {
        match job {
            Job::Complete(work, answer) => {
                let _ = answer.send(self.complete(work));
            }
            Job::Fail(failed, answer) => {
                let _ = answer.send(self.fail(failed));
            }
            Job::Report(_) => {}
        }
        // Whatever the session says after its end (its record) goes too.
        let _ = self.flush();
    }

    fn complete(&mut self, work: Completion) -> Result<CompleteOutcome, String> {
        self.flush()?;
        let fence = self.lease.fence;
        for a in work
            .artifacts
            .iter()
            .filter(|a| a.kind == ArtifactKind::File)
        {
            let bytes = std::fs::read(self.lease.data_dir.join(&a.path))
                .map_err(|e| format!("cannot read the artifact {}: {e}", a.path))?;
            let path = format!(
                "{}?fence={fence}&path={}",
                self.path("files"),
                encode(&a.path)
            );
            self.retried(|http| http.put_bytes(&path, "application/octet-stream", &bytes))?;
        }
        if let Ok(diff) = crate::dispatch::diff::for_item(&self.lease.data_dir, &self.lease.item_id)
        {
            let body = serde_json::to_vec(&diff).map_err(|e| e.to_string())?;
            let path = format!("{}?fence={fence}", self.path("diff"));
            self.retried(|http| http.put_bytes(&path, "application/json", &body))?;
        }
        let body = json!({
            "fence": fence,
            "artifacts": work.artifacts,
            "acceptance": work.acceptance,
            "unmet": work.unmet,
            "session": work.session,
        });
        let path = self.path("complete");
        self.retried(|http| http.post::<CompleteOutcome>(&path, &body))
    }

    fn fail(&mut self, failed: FailAttempt) -> Result<(), String> {
        self.flush()?;
        let (verdict, not_before) = match failed.verdict {
            Verdict::Retry => ("retry", None),
            Verdict::Block => ("block", None),
            Verdict::Requeue { not_before } => ("requeue", not_before),
        };
        let reason: String = failed.reason.chars().take(2000).collect();
        let body = json!({
            "fence": self.lease.fence,
            "reason": reason,
            "verdict": verdict,
            "notBefore": not_before,
            "session": failed.session,
        });
        let path = self.path("fail");
        self.retried(|http| http.post::<Value>(&path, &body))
            .map(|_| ())
    }
}
