//! Reading trees: COPY/ADD sources, `COPY --from`, exporters and `cp` never resolve outside their root.

#[allow(unused_imports)]
use crate::common;
