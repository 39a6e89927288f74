//! CDN-shaped network knobs of the fake Hub: a rate cap per CDN connection (the kernel's
//! `SO_MAX_PACING_RATE`, which also paces sendfile on loopback), a seeded bimodal draw of that
//! cap per connection (CloudFront edges: most at 8.7 MB/s, the rest at 68 MB/s), and a latency
//! added to every request.

use std::time::Duration;

/// A bimodal per-connection rate: `slow` with probability `p_slow`, else `fast`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bimodal {
    /// Bytes per second of a slow connection.
    pub slow: u64,
    /// Bytes per second of a fast connection.
    pub fast: u64,
    /// Probability of a slow connection.
    pub p_slow: f64,
    /// Seed of the draw (the n-th connection always gets the same rate).
    pub seed: u64,
}

impl Bimodal {
    /// The CloudFront edges of xet-core#821: 70 % at 8.7 MB/s, the rest at 68 MB/s.
    pub fn cloudfront(seed: u64) -> Bimodal {
        Bimodal {
            slow: 8_700_000,
            fast: 68_000_000,
            p_slow: 0.7,
            seed,
        }
    }
}

/// The network shape of the fake Hub (default: none).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Wan {
    /// Cap of every CDN connection, bytes per second.
    pub cdn_rate: Option<u64>,
    /// A per-connection draw of the CDN cap (wins over `cdn_rate`).
    pub bimodal: Option<Bimodal>,
    /// Added before every request of both origins is answered.
    pub latency: Duration,
    /// A bottleneck the CDN's bodies share, bytes per second: more connections get no more
    /// in all (what a client's ramp must notice and step back from).
    pub link_rate: Option<u64>,
    /// A CDN node that collapses under many streams (huggingface_hub#4893): with more than
    /// `.0` bodies streaming at once, the shared link runs at `.1` bytes per second instead.
    pub link_collapse: Option<(u64, u64)>,
}

impl Wan {
    /// The cap of the `n`-th CDN connection (0-based), if any.
    pub fn rate_of_connection(&self, n: u64) -> Option<u64> {
        match self.bimodal {
            Some(b) => Some(if unit(b.seed, n) < b.p_slow { b.slow } else { b.fast }),
            None => self.cdn_rate,
        }
    }
}

/// A uniform draw in [0, 1) from a seed and an index (splitmix64).
fn unit(seed: u64, n: u64) -> f64 {
    let mut z = seed.wrapping_add(n.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Caps the send rate of one TCP connection (`SO_MAX_PACING_RATE`, bytes per second).
pub(crate) fn set_pacing_rate(tcp: &tokio::net::TcpStream, bytes_per_sec: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    /// `SO_MAX_PACING_RATE` from `asm-generic/socket.h` (x86, arm, riscv).
    const SO_MAX_PACING_RATE: libc::c_int = 47;
    let rate: u64 = bytes_per_sec;
    let fd = tcp.as_raw_fd();
    #[allow(unsafe_code)]
    // SAFETY: `fd` is an open socket owned by `tcp` for the whole call; the option value points
    // to a live u64 whose exact size is passed as the length.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_MAX_PACING_RATE,
            (&rate as *const u64).cast(),
            std::mem::size_of::<u64>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bimodal_draw_is_seeded_and_about_right() {
        let wan = Wan {
            bimodal: Some(Bimodal::cloudfront(42)),
            ..Wan::default()
        };
        let draws: Vec<u64> = (0..1000).map(|n| wan.rate_of_connection(n).unwrap()).collect();
        let slow = draws.iter().filter(|r| **r == 8_700_000).count();
        assert!((600..800).contains(&slow), "{slow}");
        assert!(draws.iter().all(|r| *r == 8_700_000 || *r == 68_000_000));
        assert_eq!(wan.rate_of_connection(7), wan.rate_of_connection(7));
        let capped = Wan {
            cdn_rate: Some(40_000_000),
            ..Wan::default()
        };
        assert_eq!(capped.rate_of_connection(3), Some(40_000_000));
        assert_eq!(Wan::default().rate_of_connection(0), None);
    }
}
