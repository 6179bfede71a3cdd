/** Per-socket markers of stream mode (symbols, so they never clash with application fields). */

/** The ODB connection state attached to a socket that speaks, or may speak, ODB. */
export const kOdbConnection = Symbol('odb.connection');
/** Set on sockets ODB itself opens (probes): never interposed. */
export const kOdbInternal = Symbol('odb.internal');
/** Set once a socket's outgoing connection was checked against the policy. */
export const kOdbChecked = Symbol('odb.checked');
/** On an outgoing plain socket to a peer not known to speak ODB (`*`): the peer, to retire it. */
export const kOdbPlainPeer = Symbol('odb.plainPeer');
