package node

import (
	"io"
	"net"
)

// Relay forwards every connection accepted on l to target until l is
// closed: the node reaches the API server, which listens on loopback only,
// through the host's end of the veth.
func Relay(l net.Listener, target string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			up, err := net.Dial("tcp", target)
			if err != nil {
				return
			}
			defer up.Close()
			done := make(chan struct{}, 2)
			go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite(); done <- struct{}{} }() //nolint:errcheck
			go func() { io.Copy(c, up); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()  //nolint:errcheck
			<-done
			<-done
		}()
	}
}
