//! NetConnection/NetStream commands (AMF0 type 20, AMF3 type 17) and the onStatus/_result
//! builders the sessions send.
