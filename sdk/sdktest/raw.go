package sdktest

import (
	"google.golang.org/grpc/status"

	"github.com/labelbackup/label-backup/sdk"
)

// fromRaw maps an error from a raw generated client the way the SDK's
// clients do, so suites can use errors.Is with the sdk sentinels.
func fromRaw(err error) error {
	st, ok := status.FromError(err)
	if err == nil || !ok {
		return err
	}
	return &sdk.RemoteError{Code: st.Code(), Message: st.Message()}
}
