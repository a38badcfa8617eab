//! Checks on a query's raw bytes that hickory's decoder does not make.

/// Length of a DNS message header: where the question section starts, and
/// the offset below which a compression pointer lands in the header.
const HEADER_LEN: usize = 12;

/// Whether a name in `questions` (the question section as received, which
/// starts at offset `HEADER_LEN` of the message) is compressed with a pointer
/// into the header. Decoding already checked the section is well formed;
/// anything short is treated as pointing nowhere harmful.
pub(super) fn questions_point_into_header(questions: &[u8]) -> bool {
    let mut at = 0;
    while at < questions.len() {
        // One name: labels up to the root label or a pointer.
        loop {
            let Some(&len) = questions.get(at) else {
                return false;
            };
            match len {
                0 => {
                    at += 1;
                    break;
                }
                l if l & 0xC0 == 0xC0 => {
                    let Some(&low) = questions.get(at + 1) else {
                        return false;
                    };
                    let target = usize::from(l & 0x3F) << 8 | usize::from(low);
                    if target < HEADER_LEN {
                        return true;
                    }
                    at += 2;
                    break;
                }
                l => at += 1 + usize::from(l),
            }
        }
        // Type and class.
        at += 4;
    }
    false
}
