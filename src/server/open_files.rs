//! The open-file limit: every connection is a file descriptor, so at start-up
//! nene raises its soft `RLIMIT_NOFILE` toward the hard limit, enough for
//! `server.max_connections` plus the files it needs besides (listener, logs,
//! session files, Redis). Distributions often start services with a soft
//! limit of 1024, which would turn a burst of idle connections into
//! `EMFILE` errors in the accept loop long before the connection cap.

/// Descriptors kept for what is not a FastCGI connection.
const SPARE_FILES: u64 = 256;

/// What raising the limit did, for one log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenFileLimit {
    /// The soft limit was already high enough.
    Enough {
        /// The soft limit as found.
        soft: u64,
    },
    /// The soft limit was raised to `soft`.
    Raised {
        /// The soft limit nene started with.
        from: u64,
        /// The soft limit now.
        soft: u64,
    },
    /// The hard limit is below what `max_connections` needs; the soft limit
    /// is now the hard limit.
    TooLow {
        /// The soft limit now: the hard limit, or the old soft limit if that
        /// was higher.
        soft: u64,
        /// The hard limit, which only root (or the service manager) can raise.
        hard: u64,
        /// What `max_connections` plus the spare descriptors need.
        wanted: u64,
    },
}

/// `getrlimit` or `setrlimit` failed; logged as a warning, and nene runs on with
/// the limit it has.
#[derive(Debug, thiserror::Error)]
#[error("cannot {operation} RLIMIT_NOFILE: {source}")]
pub struct OpenFileLimitError {
    operation: &'static str,
    source: std::io::Error,
}

/// Raises the soft open-file limit to fit `max_connections` (or as far as
/// the hard limit allows) and says what it did.
pub fn raise_open_file_limit(max_connections: usize) -> Result<OpenFileLimit, OpenFileLimitError> {
    let wanted = (max_connections as u64).saturating_add(SPARE_FILES);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(OpenFileLimitError {
            operation: "read",
            source: std::io::Error::last_os_error(),
        });
    }
    let (soft, hard) = (limit.rlim_cur, limit.rlim_max);
    if soft >= wanted {
        return Ok(OpenFileLimit::Enough { soft });
    }
    let target = wanted.min(hard);
    if target > soft {
        limit.rlim_cur = target;
        // SAFETY: setrlimit reads the struct we pass; raising the soft limit
        // up to the hard limit needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(OpenFileLimitError {
                operation: "raise",
                source: std::io::Error::last_os_error(),
            });
        }
    }
    if target < wanted {
        return Ok(OpenFileLimit::TooLow {
            soft: target.max(soft),
            hard,
            wanted,
        });
    }
    Ok(OpenFileLimit::Raised {
        from: soft,
        soft: target,
    })
}

/// Raises the limit and logs the outcome: info when raised, a warning that
/// names both numbers when the hard limit is too low.
pub fn raise_open_file_limit_and_log(max_connections: usize) {
    match raise_open_file_limit(max_connections) {
        Ok(OpenFileLimit::Enough { .. }) => {}
        Ok(OpenFileLimit::Raised { from, soft }) => {
            tracing::info!("raised the open-file limit from {from} to {soft}");
        }
        Ok(OpenFileLimit::TooLow { soft, hard, wanted }) => tracing::warn!(
            "the open-file hard limit is {hard} but server.max_connections = {max_connections} \
             needs about {wanted}; connections beyond the limit of {soft} will fail \
             (raise LimitNOFILE / ulimit -Hn, or lower server.max_connections)"
        ),
        Err(error) => tracing::warn!("{error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_least_where_it_was_and_never_above_the_hard_limit() {
        let outcome = raise_open_file_limit(4096).unwrap();
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we pass.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        let (soft, hard) = (limit.rlim_cur, limit.rlim_max);
        assert!(soft <= hard);
        match outcome {
            OpenFileLimit::Enough { soft: was } => assert!(was >= 4096 + SPARE_FILES),
            OpenFileLimit::Raised { soft: now, .. } => assert_eq!(now, soft),
            OpenFileLimit::TooLow { hard: h, .. } => {
                assert_eq!(h, hard);
                assert_eq!(soft, hard);
            }
        }
    }
}
