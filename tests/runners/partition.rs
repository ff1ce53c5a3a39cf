//! A network partition a test can make and heal: a network namespace joined to the host by a
//! veth pair, with addresses in 10.203.N.0/30 used only between the two ends. A runner started
//! inside reaches the server on the host end's address only while the link is up. Everything
//! is removed when the guard drops, whatever the test did.

use std::process::{Command, Stdio};

pub struct Partition {
    namespace: String,
    host_link: String,
    inner_link: String,
    /// The host end's address: the server listens here.
    pub host_address: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// A number this process has not used, different across processes: enough randomness to keep
/// parallel test runs (and leftovers of a crashed one) apart.
fn random() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish() as u32
}

impl Partition {
    /// Makes the namespace and the link, up; `Err` says why it cannot (no `ip netns`, not
    /// root), so the caller can skip with that sentence.
    pub fn make() -> Result<Partition, String> {
        ip(&["netns", "list"])?;
        let tag = random();
        let suffix = format!("{:06x}", tag & 0xff_ffff);
        let subnet = (tag >> 24) & 0xff;
        let partition = Partition {
            namespace: format!("fd-test-{suffix}"),
            host_link: format!("fdh{suffix}"),
            inner_link: format!("fdn{suffix}"),
            host_address: format!("10.203.{subnet}.1"),
        };
        ip(&["netns", "add", &partition.namespace])?;
        // From here on the guard exists: a failure below still removes what was made.
        let inner_address = format!("10.203.{subnet}.2/30");
        let host_cidr = format!("{}/30", partition.host_address);
        let ns = partition.namespace.as_str();
        ip(&[
            "link",
            "add",
            &partition.host_link,
            "type",
            "veth",
            "peer",
            "name",
            &partition.inner_link,
        ])?;
        ip(&["link", "set", &partition.inner_link, "netns", ns])?;
        ip(&["addr", "add", &host_cidr, "dev", &partition.host_link])?;
        ip(&["link", "set", &partition.host_link, "up"])?;
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &inner_address,
            "dev",
            &partition.inner_link,
        ])?;
        ip(&["-n", ns, "link", "set", &partition.inner_link, "up"])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        Ok(partition)
    }

    /// The command prefix that runs a program inside the namespace.
    pub fn wrapper(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.namespace]
            .map(str::to_string)
            .to_vec()
    }

    /// Cuts the link: nothing inside reaches the host any more.
    pub fn cut(&self) {
        ip(&[
            "-n",
            &self.namespace,
            "link",
            "set",
            &self.inner_link,
            "down",
        ])
        .expect("cut");
    }

    /// Heals the link.
    pub fn heal(&self) {
        ip(&["-n", &self.namespace, "link", "set", &self.inner_link, "up"]).expect("heal");
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        // Deleting one end of a veth pair deletes the other; the namespace goes last.
        let _ = ip(&["link", "del", &self.host_link]);
        let _ = ip(&["netns", "del", &self.namespace]);
    }
}
