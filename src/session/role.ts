/**
 * Which side of a connection a session is. A type of its own, apart from session.ts, because it is public
 * (`RpcSession.role`, `createSession`): the published declarations reach it without reaching the core Session.
 */

/** `dialer`: this side connected (its streams get odd ids); `acceptor`: the peer connected to it. */
export type Role = 'dialer' | 'acceptor';
