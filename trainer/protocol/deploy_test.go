package protocol

import (
	"encoding/json"
	"testing"
)

func TestServeHeartbeatWireShape(t *testing.T) {
	b, _ := json.Marshal(ServeHeartbeat{URL: "http://h:1", Healthy: true})
	if string(b) != `{"url":"http://h:1","healthy":true,"detail":""}` {
		t.Fatalf("heartbeat %s", b)
	}
	b, _ = json.Marshal(ServeHeartbeatReply{})
	if string(b) != `{"stop":false}` {
		t.Fatalf("reply %s", b)
	}
}
