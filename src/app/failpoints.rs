//! `failpoints` (hidden): list the failpoint names, for crash tests.

use super::Output;
use crate::sys::failpoint;

pub(crate) fn failpoints() -> Output {
    let list: Vec<&str> = failpoint::ALL.to_vec();
    Output::new(&list, format!("{}\n", list.join("\n")))
}
