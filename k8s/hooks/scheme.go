package hooks

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
)

// The exec request carries no body: a bare scheme serves the client.
var (
	schemaCoreV1         = schema.GroupVersion{Version: "v1"}
	negotiatedSerializer = serializer.NewCodecFactory(runtime.NewScheme()).WithoutConversion()
)
