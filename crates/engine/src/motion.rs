//! The motion a debate argues: a reader's question, checked before anything is called.

/// The longest motion a reader may set, in characters.
pub const MAX_MOTION_CHARS: usize = 300;

/// Why a reader's motion is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MotionError {
    #[error("the motion is empty")]
    Empty,
    #[error("the motion is {0} characters long; the limit is {MAX_MOTION_CHARS}")]
    TooLong(usize),
}

/// Checks a reader's motion: not empty, not too long.
pub fn check_motion(motion: &str) -> Result<&str, MotionError> {
    let motion = motion.trim();
    let chars = motion.chars().count();
    if chars == 0 {
        Err(MotionError::Empty)
    } else if chars > MAX_MOTION_CHARS {
        Err(MotionError::TooLong(chars))
    } else {
        Ok(motion)
    }
}
