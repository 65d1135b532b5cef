//! Extraction in a child process, so a hostile file costs an error message, not the worker.
//!
//! The worker re-executes its own binary (or any binary whose `main` first calls
//! [`run_child_if_requested`]) with [`CHILD_ENV`] set. Before the child's program starts, its
//! address space (`RLIMIT_AS`) and CPU time (`RLIMIT_CPU`) are limited, core dumps are off,
//! it gets no environment (no secrets) and dies with its parent. The document goes in on stdin
//! after a one-line JSON request; the result comes back as JSON on stdout. The parent kills
//! the child's process group at the wall-clock timeout or when the output passes its cap, and
//! turns every way a child can end (signal, allocation failure, stack overflow, garbage) into
//! an [`ExtractError`] a customer can read.

use std::ffi::OsString;
use std::io::{self, BufRead, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{ExtractError, FileKind, Limits, extract, sniff};
use crate::knowledge::{Extracted, Location, Part};

/// Set (to `1`) in the child's environment: "read a document from stdin and exit".
pub const CHILD_ENV: &str = "CHATPAD_EXTRACT_CHILD";

/// How the child's own failures (bad request, broken pipe) start on stderr.
const CHILD_FAILED: &str = "chatpad extraction child:";

/// Stderr kept from the child, to tell an allocation failure or a stack overflow from a crash.
const STDERR_CAP: u64 = 64 << 10;

/// Call first thing in `main` of every binary that may serve as the extraction child (the
/// ingest worker, `chatpad-extract`): in the child it extracts and exits, otherwise it returns
/// at once. Call it before starting an async runtime, whose threads would only take address
/// space from the document.
pub fn run_child_if_requested() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let code = match child_main() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{CHILD_FAILED} {e}");
            2
        }
    };
    std::process::exit(code);
}

/// The first stdin line of the child.
#[derive(Serialize, Deserialize)]
struct Request {
    kind: FileKind,
    limits: Limits,
    /// Bytes of the document that follow the line.
    len: usize,
}

/// The child's stdout.
#[derive(Serialize, Deserialize)]
enum Response {
    Ok(WireExtracted),
    Err(ExtractError),
}

/// [`Extracted`] as it crosses the pipe.
#[derive(Serialize, Deserialize)]
struct WireExtracted {
    title: Option<String>,
    parts: Vec<WirePart>,
}

#[derive(Serialize, Deserialize)]
struct WirePart {
    markdown: String,
    location: Location,
}

fn child_main() -> io::Result<()> {
    let mut stdin = io::stdin().lock();
    let mut line = String::new();
    stdin.read_line(&mut line)?;
    let request: Request = serde_json::from_str(&line).map_err(io::Error::other)?;
    let mut bytes = Vec::with_capacity(request.len);
    stdin.take(request.len as u64).read_to_end(&mut bytes)?;
    let result = std::panic::catch_unwind(|| extract(&bytes, request.kind, &request.limits))
        .unwrap_or_else(|_| Err(ExtractError::Crashed("the reader failed on it".to_owned())));
    drop(bytes);
    let response = match result {
        Ok(extracted) => Response::Ok(WireExtracted {
            title: extracted.title,
            parts: extracted
                .parts
                .into_iter()
                .map(|p| WirePart {
                    markdown: p.markdown,
                    location: p.location,
                })
                .collect(),
        }),
        Err(e) => Response::Err(e),
    };
    let mut stdout = io::stdout().lock();
    serde_json::to_writer(&mut stdout, &response).map_err(io::Error::other)?;
    stdout.flush()
}

/// How the child went, for logs and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChildReport {
    /// Peak resident memory of the child (`ru_maxrss`).
    pub peak_rss_bytes: u64,
    /// User plus system CPU time of the child.
    pub cpu: Duration,
    /// Wall-clock time from spawn to exit.
    pub wall: Duration,
}

/// Where the child comes from and how far it may go.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// The child's program: this binary by default.
    pub program: PathBuf,
    /// Its arguments (none by default).
    pub args: Vec<OsString>,
    pub limits: Limits,
}

impl Sandbox {
    /// A sandbox whose child is the running binary, which must call
    /// [`run_child_if_requested`] first in `main`.
    pub fn this_binary(limits: Limits) -> Result<Self, ExtractError> {
        let program = std::env::current_exe()
            .map_err(|e| ExtractError::Internal(format!("locating this program: {e}")))?;
        Ok(Sandbox {
            program,
            args: Vec::new(),
            limits,
        })
    }

    /// Extracts `bytes` in a child process; see the module documentation.
    pub fn extract(&self, bytes: &[u8], kind: FileKind) -> Result<Extracted, ExtractError> {
        self.extract_with_report(bytes, kind).0
    }

    /// [`Sandbox::extract`] off the async runtime's threads (it waits for the child).
    pub async fn extract_async(
        &self,
        bytes: Vec<u8>,
        kind: FileKind,
    ) -> Result<Extracted, ExtractError> {
        let sandbox = self.clone();
        tokio::task::spawn_blocking(move || sandbox.extract(&bytes, kind))
            .await
            .map_err(|e| ExtractError::Internal(format!("the extraction task failed: {e}")))?
    }

    /// [`Sandbox::extract`], also reporting the child's peak memory and times.
    pub fn extract_with_report(
        &self,
        bytes: &[u8],
        kind: FileKind,
    ) -> (Result<Extracted, ExtractError>, ChildReport) {
        // A mismatch needs no child.
        let kind = match sniff(bytes, kind) {
            Ok(kind) => kind,
            Err(e) => return (Err(e), ChildReport::default()),
        };
        match self.run(bytes, kind) {
            Ok((outcome, report)) => (self.interpret(outcome, &report), report),
            Err(e) => (Err(e), ChildReport::default()),
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .env_clear()
            .env(CHILD_ENV, "1")
            // One malloc arena: address space is what the child is limited on.
            .env("MALLOC_ARENA_MAX", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout kills whatever it started too.
            .process_group(0);
        if let Some(path) = std::env::var_os("LD_LIBRARY_PATH") {
            command.env("LD_LIBRARY_PATH", path);
        }
        let memory = self.limits.memory_bytes;
        // CPU seconds: past the soft limit SIGXCPU, a second later SIGKILL; a backstop should
        // the parent die before its timeout fires.
        let cpu = self.limits.timeout.as_secs().max(1) + 1;
        // SAFETY: runs between fork and exec; it only makes async-signal-safe system calls
        // and touches no memory shared with the parent.
        unsafe {
            command.pre_exec(move || {
                set_limit(libc::RLIMIT_AS, memory, memory)?;
                set_limit(libc::RLIMIT_CPU, cpu, cpu + 1)?;
                set_limit(libc::RLIMIT_CORE, 0, 0)?;
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command
    }

    /// Runs the child to its end (or kills it), collecting what it said.
    fn run(&self, bytes: &[u8], kind: FileKind) -> Result<(Outcome, ChildReport), ExtractError> {
        let started = Instant::now();
        let mut child = self
            .command()
            .spawn()
            .map_err(|e| ExtractError::Internal(format!("starting the reader: {e}")))?;
        let pid = child.id() as libc::pid_t;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let request = Request {
            kind,
            limits: self.limits.clone(),
            len: bytes.len(),
        };
        let mut header = serde_json::to_vec(&request).expect("a request serialises");
        header.push(b'\n');
        let output_cap = self.limits.max_text_bytes as u64 * 2 + (16 << 20);
        let overflow = AtomicBool::new(false);

        std::thread::scope(|scope| {
            scope.spawn(move || {
                // A child that dies early closes the pipe: the error only means that.
                let _ = stdin
                    .write_all(&header)
                    .and_then(|()| stdin.write_all(bytes));
            });
            let out = scope.spawn(|| {
                let mut out = Vec::new();
                let _ = (&mut stdout).take(output_cap + 1).read_to_end(&mut out);
                if out.len() as u64 > output_cap {
                    overflow.store(true, Ordering::SeqCst);
                }
                out
            });
            let err = scope.spawn(move || {
                let mut err = Vec::new();
                let _ = (&mut stderr).take(STDERR_CAP).read_to_end(&mut err);
                let _ = io::copy(&mut stderr, &mut io::sink());
                err
            });
            let (status, rusage, killed) = wait(pid, started + self.limits.timeout, &overflow);
            let report = ChildReport {
                peak_rss_bytes: rusage.ru_maxrss.max(0) as u64 * 1024,
                cpu: timeval(rusage.ru_utime) + timeval(rusage.ru_stime),
                wall: started.elapsed(),
            };
            let stdout = out.join().unwrap_or_default();
            let stderr = err.join().unwrap_or_default();
            Ok((
                Outcome {
                    status,
                    killed,
                    stdout,
                    stderr,
                },
                report,
            ))
        })
    }

    fn interpret(&self, outcome: Outcome, report: &ChildReport) -> Result<Extracted, ExtractError> {
        let limits = &self.limits;
        let timeout = || ExtractError::Timeout {
            secs: limits.timeout.as_secs(),
        };
        let out_of_memory = || ExtractError::OutOfMemory {
            mb: limits.memory_bytes >> 20,
        };
        let stderr = String::from_utf8_lossy(&outcome.stderr);
        match outcome.killed {
            Some(Killed::Timeout) => return Err(timeout()),
            Some(Killed::Overflow) => {
                return Err(ExtractError::TooLarge(format!(
                    "the document has more than {} MB of text",
                    limits.max_text_bytes >> 20
                )));
            }
            None => {}
        }
        if outcome.status.success() {
            return match serde_json::from_slice::<Response>(&outcome.stdout) {
                Ok(Response::Ok(wire)) => Ok(Extracted {
                    title: wire.title,
                    parts: wire
                        .parts
                        .into_iter()
                        .map(|p| Part {
                            markdown: p.markdown,
                            location: p.location,
                        })
                        .collect(),
                }),
                Ok(Response::Err(e)) => Err(e),
                Err(e) => {
                    tracing::error!(error = %e, stderr = %stderr, "the extraction child answered garbage");
                    Err(ExtractError::Internal(
                        "the reader gave an unreadable answer".to_owned(),
                    ))
                }
            };
        }
        tracing::warn!(status = %outcome.status, stderr = %stderr, "the extraction child failed");
        if let Some(line) = stderr.lines().find(|l| l.starts_with(CHILD_FAILED)) {
            return Err(ExtractError::Internal(line.to_owned()));
        }
        let signal = outcome.status.signal();
        if signal == Some(libc::SIGXCPU) {
            return Err(timeout());
        }
        if stderr.contains("memory allocation of") || stderr.contains("out of memory") {
            return Err(out_of_memory());
        }
        if stderr.contains("has overflowed its stack") {
            return Err(ExtractError::Crashed(
                "it is nested too deeply to follow".to_owned(),
            ));
        }
        if signal == Some(libc::SIGKILL) {
            // Not ours: the CPU hard limit, or the system short of memory.
            return Err(if report.cpu + Duration::from_secs(1) >= limits.timeout {
                timeout()
            } else {
                out_of_memory()
            });
        }
        Err(ExtractError::Crashed(
            "the reader stopped unexpectedly".to_owned(),
        ))
    }
}

/// Why the parent killed the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Killed {
    Timeout,
    Overflow,
}

struct Outcome {
    status: ExitStatus,
    killed: Option<Killed>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

fn set_limit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: a plain system call with a valid pointer.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
}

/// Reaps the child, killing its process group at `deadline` or once `overflow` is set. The
/// child is reaped only here, so its pid cannot be reused while it may still be killed.
fn wait(
    pid: libc::pid_t,
    deadline: Instant,
    overflow: &AtomicBool,
) -> (ExitStatus, libc::rusage, Option<Killed>) {
    let mut status = 0;
    // SAFETY: rusage is plain data, valid when zeroed.
    let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut killed = None;
    let mut pause = Duration::from_millis(1);
    loop {
        // SAFETY: waits for our own child with valid pointers.
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut rusage) };
        if reaped == pid {
            break;
        }
        if reaped < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            // Cannot happen for our own unreaped child; do not spin if it does.
            break;
        }
        if killed.is_none() {
            if overflow.load(Ordering::SeqCst) {
                killed = Some(Killed::Overflow);
            } else if Instant::now() >= deadline {
                killed = Some(Killed::Timeout);
            }
            if killed.is_some() {
                // SAFETY: signals the process group we created; its leader is not yet reaped.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
                pause = Duration::from_millis(1);
            }
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(25));
    }
    (ExitStatus::from_raw(status), rusage, killed)
}
